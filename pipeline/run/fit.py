"""What the run needs of its preset, checked against the preset's inventory (models.inventory) before any model
loads: each missing part is refused in one line or, where the run can go on without it, a warning. Nothing here
is refused for a preset whose generator is itself missing: loading names everything missing at once."""

from __future__ import annotations

import math
from dataclasses import replace

from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.models.inventory import Inventory, ip_adapter_missing
from styles import AUTO_ROOM


def _here(stock: Inventory) -> bool:
    """Whether the preset's generator is on this machine (built ones always are)."""
    return stock.has("stable diffusion")


def default_room(stock: Inventory) -> tuple[str, list[str]]:
    """The room when none is given: auto (found per photo) when the preset has CLIP here, else living room,
    with a warning when that is for want of CLIP (not when the whole preset is missing: loading says so)."""
    if stock.has("clip"):
        return AUTO_ROOM, []
    if not _here(stock):
        return "living room", []
    return "living room", [
        f"--room: {stock.spec.name} has no CLIP on this machine, so every photo is prompted as a "
        "living room (give --room, or fetch CLIP with `modomo models download sd15`)"
    ]


def check_room(config: RunConfig, stock: Inventory) -> None:
    if config.options.room == AUTO_ROOM and not stock.has("clip"):
        raise UsageError(
            f"--room auto needs the preset's CLIP, which {stock.spec.name} lacks here; "
            "fetch it with `modomo models download sd15` or give a room"
        )


def check_parts(config: RunConfig, stock: Inventory) -> None:
    """Parts of the room to keep need the scene segmentation model: refused without it, in one line (checked for
    the command's --preserve before anything is written, and again once a manifest's rows are read)."""
    if config.keeps_parts and not stock.has("segmentation") and _here(stock):
        where = stock.spec.segmenter or "a segmentation/ folder in the bundle"
        raise UsageError(
            f"--preserve with parts of the room (window, door, ...) needs the scene segmentation model "
            f"({where}), not on this machine; fetch it with `modomo models download sd15`"
        )


def check_lines(config: RunConfig, stock: Inventory, warnings: list[str]) -> str | None:
    """A style's lines control needs the lines ControlNet: without it the style runs on depth and canny, and the
    run says so; returns why it is off (None when it runs). The same decision in every engine: a Ray actor gets the
    planned config, a device worker plans again."""
    styles = [*config.styles, *config.job_styles]
    wanting = [s.name for s in styles if s.lines is not None and s.lines.scale > 0]
    if not wanting or stock.has("controlnet lines") or not _here(stock):
        return None
    where = stock.spec.controlnet_lines or "a controlnet-lines/ folder in the bundle"
    off = f"the lines ControlNet ({where}) is not on this machine"
    alone = [s.name for s in styles if not replace(config, lines_off=off).controls_of(s)]
    if alone:
        raise UsageError(f"{', '.join(alone)}: steers only with the lines control, and {off}")
    warnings.append(
        f"{', '.join(wanting)}: {off}, so the straight-line control is off and results "
        f"steer with their other controls (fetch it with `modomo models download sd15`)"
    )
    return off


def check_adapter(config: RunConfig, stock: Inventory) -> None:
    """A reference (or a room set) needs the preset's IP-Adapter: refused in one line, with the download command."""
    if config.uses_references and not stock.has("ip-adapter") and _here(stock):
        raise UsageError(ip_adapter_missing(stock.spec))


def check_declutter(config: RunConfig, stock: Inventory) -> None:
    """--mode declutter needs LaMa and the inpaint ControlNet, --mode stage the inpaint ControlNet: refused in one
    line, with the download command."""
    from pipeline.models.inventory import declutter_missing

    modes = {s.mode for s in [*config.styles, *config.job_styles]} - {"restyle"}
    for mode in sorted(modes) if _here(stock) else ():
        missing = declutter_missing(stock.spec, stock, mode)
        if missing:
            raise UsageError(missing)


def check_upscaler(config: RunConfig, stock: Inventory) -> None:
    """Results above the working size need the preset's super-resolution weight when it names one (a preset
    without one enlarges with Lanczos, and says so in the settings)."""
    if config.options.output_size == "working" or stock.part("upscaler") is None:
        return
    if not stock.has("upscaler") and _here(stock):
        raise UsageError(
            f"--output-size {config.options.output_size}: the upscaler {stock.spec.upscaler_id} is not on this "
            f"machine; fetch it with `modomo models download {stock.spec.name}`"
        )


def check_fast(config: RunConfig, stock: Inventory) -> None:
    """--fast needs the recipe's LoRA on this machine (built in for the random presets)."""
    if not config.recipe:
        return
    from pipeline.models.fast_lora import lora_source
    from pipeline.models.fast_mode import missing

    if lora_source(stock.spec, config.recipe) is None and _here(stock):
        raise UsageError(missing(stock.spec, config.recipe))


# How a refusal names a staging's passes beside its own (pipeline.run.style_run.pass_settings).
PASS_NAMES = {
    "second pass": "the staging's second pass",
    "declutter": "the declutter pass that empties a furnished photo first",
}


def check_pass_steps(config: RunConfig) -> None:
    """A pass that starts from a picture runs the last int(steps x strength) steps of its schedule: steps too few
    for one of the run's passes (a declutter's, a staging's second pass or its declutter first) would run none, and
    every image would fail; refused in one line naming the pass and the fewest steps it needs."""
    from pipeline.run.style_run import pass_settings

    for style in [*config.styles, *config.job_styles]:
        for stage, settings in pass_settings(config, style).items():
            if settings.strength < 1.0 and int(settings.steps * settings.strength) < 1:
                own = "the declutter's pass" if style.mode == "declutter" else f"{style.name}'s pass"
                what = PASS_NAMES.get(stage, own)
                fewest = math.ceil(1 / settings.strength)
                while int(fewest * settings.strength) < 1:
                    fewest += 1
                given = f"--steps {settings.steps}" if config.options.steps else f"{style.name}: {settings.steps} steps"
                raise UsageError(
                    f"{given}: {what} at strength {settings.strength:g} would run "
                    f"int({settings.steps} x {settings.strength:g}) = 0 denoising steps; give --steps {fewest} or more"
                )


def check_compile(config: RunConfig, device) -> None:
    """--compile on, on a CPU, builds C++ packages: without a compiler it is a one-line usage error before any model
    loads (`auto` then stays eager, and says so)."""
    from pipeline.models.compiled.backends import compiler

    if config.options.compile == "on" and device.type == "cpu" and compiler() is None:
        raise UsageError("--compile on: no C++ compiler here (g++, clang++, or $CXX) to build the packages with")
