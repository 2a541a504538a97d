"""The commands' options as typed objects: what `modomo transform` and `modomo bench` were asked, before any check.

The CLI builds one of these from its parameters (field names are the parameter names) and hands it on, frozen: the
run config holds it as given (checked and in canonical form) and what the plan derives beside it, and the
`--devices` workers' command line is made from it. An option is declared here once, with its flag in the command;
nothing copies it under another name. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from pipeline.errors import UsageError

# Defaults shared by `transform` and `bench` where an option means the same in both.
DEFAULT_SIZE = 768
DEFAULT_SEED = 0
DEFAULT_BATCH_SIZE = 1
DEFAULT_DEVICE = "auto"
DEFAULT_STYLE = "modern"  # transform's style when neither --style nor --style-file is given


@dataclass(frozen=True)
class TransformOptions:
    """Every option of `modomo transform`, as given, grouped as its help shows them."""

    # Inputs and outputs
    inputs: list[str] | None = None
    out: str = "modomo-out"
    format: str = "png"
    resume: bool = True
    overwrite: bool = False
    fail_fast: bool = False

    # Style and prompt
    style: str | None = None  # None: modern, unless a --style-file is given
    style_file: list[Path] | None = None
    room: str | None = None
    seed: int = DEFAULT_SEED
    steps: int | None = None
    guidance_scale: float | None = None
    lora: list[str] | None = None
    style_ref: str | None = None  # a reference photo for the look (IP-Adapter): a path or r2:// / s3:// URI
    style_ref_scale: float | None = None  # how strongly it steers; None: the style's, else references.DEFAULT_SCALE

    # Models and device
    models: str = "sd15"
    size: int = DEFAULT_SIZE
    device: str = DEFAULT_DEVICE
    dtype: str = "auto"
    checkpoint: Path | None = None

    # Quality
    min_quality: float | None = None
    retries: int = 2

    # For designers
    mode: str | None = None  # restyle (the default), or declutter (implied by --remove): styles.MODES
    remove: str | None = None  # --mode declutter: take out only these (COCO labels, ADE20K classes, groups)
    preserve: str | None = None
    mask_dir: Path | None = None
    fidelity: str | None = None
    variations: int | None = None
    output_size: str = "working"
    report: bool = False
    contact_sheet: bool = False
    save_controls: bool = False
    disclose: str | None = None
    disclose_qr: bool = False  # a QR code of the original's address beside the disclosure
    publish_originals: bool = False  # each input, decoded and without EXIF, published under originals/

    # Catalogues
    manifest: Path | None = None
    sets_by: str | None = None  # room sets from the layout: parent (a folder of folders, one per room)
    name_template: str | None = None  # --name: output names from {stem}, {parent}, {style}, {room}, {seed}, {n}
    events: str | None = None
    sign_cert: Path | None = None
    sign_key: Path | None = None

    # Scale-out
    shard: str | None = None
    devices: str | None = None
    engine: str = "modomo"
    actors: int | None = None

    # Speed
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = 4
    compile: str = "auto"  # auto, on, off: the denoising models compiled per working shape (models.compiled)
    fast: bool = False
    fast_recipe: str | None = None

    # Cost and display
    gpu_price: float | None = None
    currency: str | None = None
    as_json: bool = False
    progress: bool | None = None
    dry_run: bool = False

    @property
    def recipe(self) -> str | None:
        """The few-step recipe asked for: --fast-recipe, else lcm with --fast, else none."""
        return self.fast_recipe or ("lcm" if self.fast else None)

    @property
    def chosen_mode(self) -> str:
        """The mode asked for, in lower case: --mode, else declutter when --remove is given, else restyle."""
        return (self.mode or ("declutter" if self.remove else "restyle")).strip().lower()

    @property
    def styles(self) -> list[str]:
        """The built-in style names of --style, in order; without --style, modern unless a --style-file is
        given (each --style-file adds its own style to these)."""
        if self.style is None:
            return [] if self.style_file else [DEFAULT_STYLE]
        return [name.strip() for name in self.style.split(",")]


@dataclass(frozen=True)
class BenchCommandOptions:
    """Every option of `modomo bench`, as given, grouped as its help shows them."""

    # What to time
    inputs: list[str] | None = None
    images: int = 4
    warmup: int = 1
    models: str = "random-sd15"
    style: str | None = None  # None: boho for a restyle (bench.setup.BENCH_STYLE); a declutter takes none
    mode: str | None = None  # restyle (the default), or declutter (implied by --remove): what is timed
    remove: str | None = None  # --mode declutter: take out only these, as transform's --remove
    mask_dir: Path | None = None  # keep masks by photo name, as transform's (synthetic rooms: synthetic-000.png...)
    room: str | None = None
    size: int = DEFAULT_SIZE
    synthetic_size: str = "1024x768"
    steps: int | None = None
    retries: int = 0
    seed: int = DEFAULT_SEED
    style_ref: str | None = None  # a reference photo (IP-Adapter): its cost is timed beside the same run without it
    style_ref_scale: float | None = None

    # Device and speed
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = DEFAULT_DEVICE
    dtype: str = "auto"
    channels_last: str = "auto"
    compile: str = "auto"  # as transform's; `auto` is decided before the timed runs (bench.compile_choice)
    fast: bool = False
    fast_recipe: str | None = None

    # Against plain diffusers
    compare_diffusers: bool = False
    ablate: bool = False
    second_pass: bool = True  # --no-second-pass: a staging's first pass alone (what the second pass changes)

    # Sweep and compare
    sweep: bool = False
    sweep_out: Path = Path("benchmarks/sweep")
    sweep_batches: str | None = None
    sweep_sizes: str | None = None
    sweep_modes: str | None = None
    sweep_dtypes: str | None = None
    compare: bool = False
    compare_out: Path | None = None

    # Cost and display
    gpu_price: float | None = None
    currency: str | None = None
    as_json: bool = False

    @property
    def recipe(self) -> str | None:
        """The few-step recipe asked for: --fast-recipe, else lcm with --fast, else none."""
        return self.fast_recipe or ("lcm" if self.fast else None)


def field_names(options_type: type) -> list[str]:
    """The option names of an options type, in declaration order (the command's parameter names)."""
    return [f.name for f in fields(options_type)]


FORMATS = ("png", "jpeg", "webp")
FORMAT_ALIASES = {"jpg": "jpeg"}
OUTPUT_SIZES = ("working", "original")
MAX_OUTPUT_SIDE = 16384


COMPILE_CHOICES = ("auto", "on", "off")


def compile_choice(value: str) -> str:
    """--compile in any case; a usage error for anything but auto, on, off."""
    text = str(value).strip().lower()
    if text not in COMPILE_CHOICES:
        raise UsageError(f"--compile {value!r}: choose one of {', '.join(COMPILE_CHOICES)}")
    return text


def format_name(value: str) -> str:
    """--format in any case, jpg meaning jpeg; a usage error for any other."""
    text = str(value).strip().lower()
    text = FORMAT_ALIASES.get(text, text)
    if text not in FORMATS:
        raise UsageError(f"--format {value!r}: choose one of {', '.join(FORMATS)} (or jpg)")
    return text


def check_output_size(value: str) -> str:
    """--output-size: working, original, or a long side in pixels; a usage error otherwise."""
    text = str(value).strip().lower()
    if text in OUTPUT_SIZES:
        return text
    if text.isdigit() and 64 <= int(text) <= MAX_OUTPUT_SIDE:
        return str(int(text))
    raise UsageError(
        f"--output-size {value!r}: choose working, original, or a long side in pixels (64 to {MAX_OUTPUT_SIDE})"
    )
