"""`--compile auto|on|off`: which working shapes are compiled.

`on` compiles every shape at its first batch, `off` none. `auto` (on the CPU) runs a shape's first batch eager and
times its denoising calls; it then compiles the shape when the images still queued for it, at that speed, would
save more than the compile is expected to take:

    images left in the queue x this shape's share of those seen x eager seconds per image x (1 - 1/speed-up)
        > the shape's compile estimate

The speed-up is the one `modomo bench --compile on` last measured for these models on this machine (its generate
stage compiled against eager: the denoising calls gain more, so it errs towards eager), else SPEEDUP: none, so
`auto` compiles only where the bench has measured compiled runs faster here.

The estimate is the time its packages took to compile on this machine before (kept by model size, shapes, CPU,
threads and torch), else DEFAULT_SECONDS per million parameters; packages already on disk only load. So a designer's
four photos stay eager, and a catalogue of thousands compiles each of its few shapes once where compiling pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHOICES = ("auto", "on", "off")
# compiled over eager, as `auto` assumes it before the bench has measured it on a machine: no gain. On a CPU with
# AMX the generate stage ran compiled at 0.83x eager with packed weights, the same images in the same run at 256x192
# in bf16 (benchmarks/cpu/compile-random-sd15-256x192-b2-bf16-first-weights-in-library.json), though each
# package's call alone ran 0.95x (a ControlNet) to 1.25x (the UNet) the eager one
# (benchmarks/cpu/package-probe-random-sd15.json)
SPEEDUP = 1.0
DEFAULT_SECONDS = 0.1  # a compile's expected seconds per million parameters when none was measured (81 s: UNet)
LEAST_SECONDS = 20.0  # what any compile costs at least (the C++ compiler's start and link)
LOAD_RATE = 1e9  # bytes per second a package on disk is expected to load at


def default_estimate(parameters: int) -> float:
    return max(LEAST_SECONDS, DEFAULT_SECONDS * parameters / 1e6)


def saving(images: float, eager_seconds_per_image: float, speedup: float = SPEEDUP) -> float:
    """What compiling saves on `images` that take `eager_seconds_per_image` eager (nothing at a speed-up of 1 or
    less)."""
    return images * eager_seconds_per_image * max(0.0, 1 - 1 / speedup)


@dataclass
class Shape:
    """What the run knows of one working shape: its frames, its eager denoising seconds, the decision."""

    frames: int = 0  # frames of this shape seen so far
    eager_frames: int = 0  # of those, denoised eager and timed
    eager_seconds: float = 0.0  # their denoising calls' seconds
    decision: str | None = None  # "compile", "eager" (for good), or None (undecided)
    why: str = ""
    estimate: float | None = None  # seconds its packages were expected to take
    estimate_source: str = ""
    packages: dict = field(default_factory=dict)  # package key -> (kind, parameters, signature, on disk)


@dataclass
class Policy:
    """The decisions of one run."""

    choice: str = "auto"
    queue: int = 0  # frames this run (this process) will generate
    done: int = 0  # frames generated so far
    shapes: dict[str, Shape] = field(default_factory=dict)
    speedup: float = SPEEDUP  # compiled over eager: measured by the bench on this machine, else assumed
    speedup_source: str = "assumed"

    def seen(self) -> int:
        return sum(s.frames for s in self.shapes.values())

    def decide(self, name: str, estimate) -> bool:
        """Whether the next batch of shape `name` runs compiled; `estimate(shape)` -> (seconds, source) for its
        packages, called only when `auto` weighs them."""
        shape = self.shapes.setdefault(name, Shape())
        if self.choice != "auto" or shape.decision is not None:
            shape.decision = shape.decision or ("compile" if self.choice == "on" else "eager")
            shape.why = shape.why or f"--compile {self.choice}"
            return shape.decision == "compile"
        if not shape.eager_frames or not shape.packages:
            shape.why = "its first batch ran eager, timed, to weigh a compile against"
            return False
        if self.left(shape) < 1:
            shape.decision, shape.why = "eager", "eager: no images were left for it after its first batch"
            return False
        shape.estimate, shape.estimate_source = estimate(shape)
        saved = saving(self.left(shape), shape.eager_seconds / shape.eager_frames, self.speedup)
        worth = saved > shape.estimate
        shape.why = (
            f"{'compiled' if worth else 'eager'}: the ~{self.left(shape):.0f} images left for it would save "
            f"~{saved:.0f} s at {self.speedup:.2f}x ({self.speedup_source}) against ~{shape.estimate:.0f} s to "
            f"compile ({shape.estimate_source})"
        )
        if worth:
            shape.decision = "compile"
        return worth

    def left(self, shape: Shape) -> float:
        """Frames of this shape still to come: those left in the queue, by its share of those seen."""
        seen = self.seen()
        return max(0, self.queue - self.done) * shape.frames / seen if seen else 0.0

    def batch(self, name: str, frames: int, eager_seconds: float | None) -> None:
        """After a batch: its frames counted, its denoising time noted when it ran eager."""
        shape = self.shapes.setdefault(name, Shape())
        shape.frames += frames
        self.done += frames
        if eager_seconds is not None:
            shape.eager_frames += frames
            shape.eager_seconds += eager_seconds
