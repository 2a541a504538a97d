"""Which control each of a pipeline's ControlNets serves: plain names, no torch.

A stack loads one ControlNet per control its run uses (its styles' depth, canny, lines; the inpaint ControlNet of
--mode declutter's refine pass), in CONTROLS order, and names them on the diffusers MultiControlNetModel that holds
them.
"""

from __future__ import annotations

# Every ControlNet a stack may hold, in the order it holds them; inpaint last, so a stack of the styles' controls
# holds them where it always did.
CONTROLS = ("depth", "canny", "lines", "inpaint")
STYLE_CONTROLS = ("depth", "canny", "lines")  # those a style can steer with ([controls.*] of a style file)
OPTIONAL_CONTROLS = ("lines", "inpaint")  # a preset may lack their ControlNets (its part "controlnet NAME")
DEFAULT_CONTROLS = ("depth", "canny")  # what a style steers with unless it says otherwise


def held_controls(pipe) -> tuple[str, ...]:
    """Which controls a pipeline's ControlNets serve, in the order it holds them: a stack loads only the ones
    its run's styles use (named at load), in CONTROLS order."""
    nets = pipe.controlnet.nets
    return getattr(pipe.controlnet, "modomo_controls", CONTROLS[: len(nets)])


def name_controls(multi, names) -> None:
    """Record on a MultiControlNetModel which control each of its ControlNets serves."""
    if len(names) != len(multi.nets):
        raise ValueError(f"{len(multi.nets)} ControlNets named as {list(names)}")
    multi.modomo_controls = tuple(names)
