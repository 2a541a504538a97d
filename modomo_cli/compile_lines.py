"""The summary's `compile` line: what --compile decided for each working shape and what compiling took."""

from __future__ import annotations

from rich.markup import escape


def compile_lines(report: dict) -> list[str]:
    """'compile     on: 3 packages compiled in 84.0 s, 0 loaded; 128x96 batch 1 bfloat16: --compile on', then one
    warning per package that could not compile; nothing for --compile off or a run that generated nothing."""
    shapes = report.get("shapes") or {}
    if report.get("choice", "off") == "off" or not shapes:
        return []
    made = report.get("packages", {})
    work = (
        f"{made.get('compiled', 0)} package(s) compiled in {report.get('compile_seconds', 0):.1f} s, "
        f"{made.get('loaded', 0)} loaded in {report.get('load_seconds', 0):.1f} s"
        if made.get("compiled") or made.get("loaded")
        else "eager"
    )
    released = report.get("shapes_released", 0)
    held = f"; {released} shape(s) released (at most {report.get('shapes_held_at_most')} held)" if released else ""
    each = "; ".join(f"{name}: {shape['why']}" for name, shape in shapes.items())
    lines = [escape(f"compile     {report['choice']}: {work}{held}; {each}")]
    lines += [
        f"[yellow]warning:[/yellow] ran eager, could not compile {escape(why)}" for why in report.get("failed", [])
    ]
    return lines


def eager_line(report: dict) -> str | None:
    """The bench's compiled run against the same images eager: 'generate 1.31x faster compiled than eager (3.1 s
    against 4.1 s per image); PSNR 41.2 dB, largest pixel difference 3'."""
    eager = report.get("eager")
    if not eager or not eager.get("speedup"):
        return None
    psnr = f"PSNR {eager['psnr_db']:.1f} dB" if eager.get("psnr_db") is not None else "identical pictures"
    return (
        f"compiled    generate {eager['speedup']:.2f}x faster than eager "
        f"({eager['compiled_generate_seconds_per_image']:.2f} s against {eager['generate_seconds_per_image']:.2f} s "
        f"per image); {psnr}, largest pixel difference {eager['max_pixel_difference']}"
    )
