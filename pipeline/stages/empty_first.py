"""--mode stage on a furnished photo: emptied first by --mode declutter's own pass, then staged.

Staging on top of the old sofa would give two sofas. A photo whose movable contents (what a full declutter of its
room type takes out: detections and scene classes) cover more than pipeline/data/stage.toml's [declutter] share is
emptied first, exactly as --mode declutter makes `empty`: its removal mask, LaMa's fill, the refine pass at the
declutter recipe's strength with its lines, composed. The photo's detections, masks, depth and scene are then found
again on the empty room, where the staging's region, depth and lines come from. A photo under the share is staged
as it is (what stands in its region is painted over). All of it is one stage in the table: `declutter`.

The frame keeps its `removal` (what was taken out) and `emptied` (where the empty room is the photo's own pixel):
the result is the photo's own pixel wherever both the declutter and the staging kept it (preserve.made_alpha),
which is what the output at the photo's own resolution holds to and what its region map shows.
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from pipeline.frames import Frame
from pipeline.stages.preserve import held
from pipeline.stages.removal import RemovalMasker
from pipeline.stages.second_pass import movable_pixels


def movable_share(masker: RemovalMasker, frame: Frame) -> float:
    """The share of the photo a full declutter of its room type would take out (before its mask grows)."""
    width, height = frame.image.size
    return float(movable_pixels(masker, frame, frame.objects, frame.scene, (height, width)).mean())


class EmptyFirst:
    """Empties the frames that need it before they are staged (module doc). `prepare` are the declutter's stages
    after its mask (LaMa's fill, its edges and lines), `generator` renders at the declutter recipe's settings,
    `compositor` puts the photo back around what was taken out, `shared` are the run's detector, segmenter, depth
    and scene stages that look at the empty room again; `above` is the share beyond which a photo is emptied."""

    def __init__(self, masker: RemovalMasker, prepare, generator, compositor, shared, above: float):
        self.masker = masker
        self.prepare = prepare
        self.generator = generator
        self.compositor = compositor
        self.shared = shared
        self.above = above

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        todo = [f for f in frames if f.ok and f.image is not None and movable_share(self.masker, f) > self.above]
        if not todo:
            return frames
        self.masker(todo)
        todo = [f for f in todo if f.ok and f.removal is not None and f.removal.any()]
        for stage in self.prepare:
            stage([f for f in todo if f.ok])
        self.generator([f for f in todo if f.ok])
        self.compositor([f for f in todo if f.ok])
        emptied = [f for f in todo if f.ok and f.result is not None]
        for frame in emptied:
            frame.before = replace(frame, before=None)  # the photo's image, detections and depth, for its own maps
            frame.emptied = held(frame)  # where the empty room is the photo's own pixel
            frame.image = frame.result.convert("RGB").resize(frame.image.size, Image.LANCZOS)
            frame.result = frame.start = frame.edges = frame.lines = frame.keep = None
        for stage in self.shared:
            if stage is not None:
                stage([f for f in emptied if f.ok])
        return frames
