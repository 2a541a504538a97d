"""The copies of a photo's frame the runner makes after the shared stages: one per style (its prompts, its own
result) and one per variation (its own seed); each shares the photo, its detections and control images."""

from __future__ import annotations

from dataclasses import replace

from pipeline.frames import Frame
from pipeline.inputs.seeds import derive_seed
from styles import AUTO_ROOM


def variations_of(frame: Frame, count: int) -> list[Frame]:
    """The frames of a job's variations: the first is the job's own frame (its seed, the shared stages'
    timings); each other one has its own seed derived from the job's and its number, and shares the
    photo, the control images and the keep mask (the same objects: the sampler embeds them once)."""
    frame.variation = 1
    return [
        frame,
        *(
            replace(
                frame,
                variation=n,
                seed=derive_seed(frame.seed, f"v{n}"),
                timings={},
                attempts=[],
                quality_parts={},
                fidelity={},
            )
            for n in range(2, count + 1)
        ),
    ]


def fork(frame: Frame, run, styles: int, fallback_room: str) -> Frame:
    """The frame of one style: shares the photo and its detections, depth, room and errors; owns its result
    and its prompts (the style's, for the frame's room, plus its manifest row's words). The shared stages'
    time is split evenly across the styles, so the stage table adds up."""
    room = frame.room if frame.room and frame.room != AUTO_ROOM else fallback_room
    job = frame.item.job
    prompt, negative = run.style.prompt_for(room), run.style.negative_prompt
    if job is not None:
        prompt = ", ".join(p for p in (prompt, job.prompt) if p)
        negative = ", ".join(n for n in (negative, job.negative_prompt) if n)
    return Frame(
        item=frame.item,
        seed=frame.seed,
        image=frame.image,
        original_size=frame.original_size,
        objects=frame.objects,
        depth=frame.depth,
        scene=frame.scene,
        error=frame.error,
        style=run.style.name,
        keep=frame.keep,
        mask_source=frame.mask_source,
        capture=frame.capture,
        room=frame.room,
        room_probability=frame.room_probability,
        original=frame.original,
        target_size=frame.target_size,
        warnings=frame.warnings,
        source=frame.source,
        input_digest=frame.input_digest,
        prompt=prompt,
        negative_prompt=negative,
        timings={k: v / styles for k, v in frame.timings.items()},
    )
