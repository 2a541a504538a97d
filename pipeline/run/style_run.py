"""StyleRun: what one style of a run needs, built once by the runner and handed with each of its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.frames import Frame, Item
from pipeline.stages.timing import timed
from styles import Style

if TYPE_CHECKING:
    from pipeline.stages.generate import GenerateSettings, Generator, PlainDiffusersGenerator


@dataclass
class StyleRun:
    """What one style needs, built once: its settings, their hash, the stages that prepare its jobs (a restyle's
    edges; a declutter's removal mask, fill and edges), named as the stage table shows them, and its generator."""

    style: Style
    settings: GenerateSettings
    settings_hash: str
    threshold: float
    prepare: tuple[tuple[str, Any], ...]
    generator: Generator | PlainDiffusersGenerator
    stems: dict[Item, str]
    loras: list
    finish: tuple[tuple[str, Any], ...] = ()  # what runs after compose, before validate (a staging's second pass)

    @property
    def masker(self):
        """A declutter's RemovalMasker (its `mask` stage); None for a restyle."""
        return dict(self.prepare).get("mask")

    def checker(self, stages: dict):
        """A declutter's DeclutterCheck, a staging's StageCheck, with the run's own models (`stages`: the runner's
        shared stages by name: its detector, segmenter and scene segmenter); None for a restyle, or without a
        detector."""
        if stages.get("detect") is None:
            return None
        region = dict(self.prepare).get("region")
        if region is not None:
            from pipeline.stages.stage_check import StageCheck

            return StageCheck(region.keeps, region.table, tuple(stages.get(n) for n in ("detect", "segment", "scene")))
        if self.masker is None:
            return None
        from pipeline.stages.declutter_check import DeclutterCheck

        return DeclutterCheck(self.masker, stages["detect"], stages.get("segment"), stages.get("scene"))

    def regrow(self, frames: list[Frame], device=None) -> None:
        """A declutter's retry of results that left objects: each one's removal mask grown a step (never into what
        it keeps), then the stages after the mask again (LaMa's fill of the larger hole, the edges blank over it),
        timed as theirs. A result that only scored low keeps its mask. A staging's retry starts again from its
        region (its second pass finds what it added again); nothing for a restyle."""
        for frame in frames:
            if frame.region is not None:  # a staging: its first pass starts again from the empty room
                frame.added = frame.start = frame.painted = None
        masker = self.masker
        left = [f for f in frames if f.ok and f.fidelity.get("objects_left")]
        if masker is None or not left:
            return
        from pipeline.stages.declutter_check import grow_removal

        for frame in left:
            grow_removal(frame, masker)
        names = [name for name, _ in self.prepare]
        for name, stage in self.prepare[names.index("mask") + 1 :]:
            live = [f for f in left if f.ok]
            with timed(live, name, device):
                stage(live)


# What one attempt made: a retry that does worse gives these back (a declutter's larger mask and its fill too).
ATTEMPT = ("quality", "quality_parts", "result", "seed", "fidelity", "removal", "start", "edges", "lines", "added",
           "painted")  # fmt: skip


def attempt_state(frame: Frame) -> dict:
    return {name: getattr(frame, name) for name in ATTEMPT}


def restore(frame: Frame, state: dict) -> None:
    for name, value in state.items():
        setattr(frame, name, value)


def rank(state: dict) -> tuple[float, int]:
    """How good an attempt is: its score, then (a declutter's, all failing at 0) fewer objects left."""
    return state["quality"], -int(state["fidelity"].get("objects_left") or 0)


def attempt_json(frame: Frame) -> dict:
    """One attempt as the metadata lists it: seed, score, parts; a declutter's objects left and removed area."""
    left = frame.fidelity.get("objects_left")
    declutter = {} if left is None else {"objects_left": left, "removed_area": round(float(frame.removal.mean()), 4)}
    return {"seed": frame.seed, "score": frame.quality, **frame.quality_parts, **declutter}


def style_run(config, stack, style: Style, settings, make, shared: dict | None = None) -> StyleRun:
    """One style's run, built once: its settings' hash, the stages that prepare its jobs, its generator (`make`:
    settings -> a generator), and what runs after it (`shared`: the runner's detector, segmenter and scene
    segmentation by name, which a staging's second pass looks with)."""
    from pipeline.stages.edges import EdgeDetector

    lines = style.lines_min_length if "lines" in settings.controls else None
    prepare = [("edges", EdgeDetector(style.canny_low, style.canny_high, lines))]
    finish = ()
    if style.mode == "declutter":
        prepare = [*declutter_stages(config, stack), *prepare]
    elif style.mode == "stage":
        masker = stage_masker(config)
        passes = pass_settings(config, style, settings)
        prepare = [("declutter", empty_first(config, stack, make(passes["declutter"]), shared or {})),
                   ("region", masker), *prepare]  # fmt: skip
        finish = second_pass(passes.get("second pass"), masker, make, shared or {})
    return StyleRun(
        style,
        settings,
        config.result_hash(style, config.result_models(stack.spec)),
        config.quality_threshold(style),
        tuple(prepare),
        make(settings),
        {},
        config.loras_for(style),
        finish,
    )


def pass_settings(config, style: Style, settings=None) -> dict:
    """The diffusion passes a style's job runs, by their stage's name, with their settings: `generate` (its own),
    and for a staging `second pass` (when its recipe has one, at the recipe's strength) and `declutter` (the pass
    that empties a furnished photo first, at the declutter recipe's settings)."""
    from dataclasses import replace

    from styles import load_mode

    settings = settings or config.generate_settings(style)
    found = {"generate": settings}
    if style.mode == "stage":
        if style.staging.second_pass:
            found["second pass"] = replace(settings, strength=style.staging.second_strength)
        found["declutter"] = config.generate_settings(load_mode("declutter"))
    return found


def empty_first(config, stack, generator, shared: dict):
    """A staging's first stage: a furnished photo emptied by the declutter recipe's own pass (its mask, LaMa's fill,
    its edges and lines, its refine pass with `generator`, composed), then looked at again by the run's detector,
    segmenter, depth and scene stages (`shared`)."""
    from pipeline.stages.edges import EdgeDetector
    from pipeline.stages.empty_first import EmptyFirst
    from pipeline.stages.preserve import Compositor
    from pipeline.stages.staging import stage_table
    from styles import load_mode

    declutter = load_mode("declutter")
    (_, masker), (_, fill) = declutter_stages(config, stack)
    lines = declutter.lines_min_length if "lines" in generator.settings.controls else None
    edges = EdgeDetector(declutter.canny_low, declutter.canny_high, lines)
    looks = [shared.get(name) for name in ("detect", "segment", "depth", "scene")]
    above = stage_table().declutter_above
    return EmptyFirst(masker, [fill, edges], generator, Compositor(), looks, above)


def stage_masker(config):
    """A staging's region stage: the floor grown by the room type's height, less what it keeps (--preserve and
    --mask-dir too)."""
    from pathlib import Path

    from pipeline.stages.staging import StageMasker

    return StageMasker(config.keep_labels, Path(config.options.mask_dir) if config.options.mask_dir else None)


def second_pass(settings, masker, make, shared: dict) -> tuple:
    """A staging's second pass at its `settings` (styles/modes/stage.toml [second_pass]), as the stage `second
    pass`; none when the recipe turns it off (no settings)."""
    from pipeline.stages.preserve import Compositor
    from pipeline.stages.second_pass import SecondPass

    if settings is None:
        return ()
    again = make(settings)
    stages = tuple(shared.get(name) for name in ("detect", "segment", "scene"))
    return (("second pass", SecondPass(masker.keeps, masker.table, again, Compositor(), stages)),)


def declutter_stages(config, stack) -> list[tuple[str, Any]]:
    """What a declutter does before its refine pass: the removal mask from the photo's detections and scene, then
    LaMa's fill of it (the pass's starting picture)."""
    from pathlib import Path

    from pipeline.stages.fill import Filler
    from pipeline.stages.removal import RemovalMasker

    folder = Path(config.options.mask_dir) if config.options.mask_dir else None
    masker = RemovalMasker(config.remove_labels, config.keep_labels, folder)
    return [("mask", masker), ("fill", Filler(stack.lama, stack.device))]


def style_scorer(config, stack):
    """CLIP style adherence when the preset's CLIP is loaded: each style against all known styles; else None."""
    if stack.clip is None:
        return None
    from pipeline.models.precision import dtype_of
    from pipeline.stages.validate import StyleScorer
    from styles import list_styles, load_style

    known = {s.name: s for s in [*map(load_style, list_styles()), *config.styles]}
    prompts = {name: style.prompt_for(config.prompt_room) for name, style in known.items()}
    model, processor = stack.clip
    return StyleScorer(model, processor, prompts, stack.device, dtype_of(model))
