"""What --compile reports (the summary's `compile` block, per shape), and several processes' reports as one; no
torch here (a --devices parent merges its workers' reports without loading it)."""

from __future__ import annotations


def run_report(denoisers, choice: str) -> dict:
    """A run's `compile` block: its Denoisers' report, or the choice alone where nothing compiles here."""
    return denoisers.report() if denoisers is not None else {"choice": choice}


def shape_json(shape) -> dict:
    per_image = shape.eager_seconds / shape.eager_frames if shape.eager_frames else None
    return {
        "images": shape.frames,
        "decision": shape.decision or "eager",
        "why": shape.why,
        "estimate_seconds": round(shape.estimate, 1) if shape.estimate is not None else None,
        "estimate_source": shape.estimate_source or None,
        "eager_denoise_seconds_per_image": round(per_image, 3) if per_image is not None else None,
    }


def merge_compile_reports(reports: list[dict]) -> dict:
    """Several processes' reports (--devices workers, Ray actors) as one: seconds and packages summed, each
    shape's images summed (compiled where any process compiled it), failures joined."""
    full = [r for r in reports if r and "shapes" in r]
    if not full:
        return next((r for r in reports if r), {})
    shapes: dict[str, dict] = {}
    for report in full:
        for name, shape in report["shapes"].items():
            known = shapes.setdefault(name, {**shape, "images": 0})
            known["images"] += shape["images"]
            if shape["decision"] == "compile":
                known.update(decision="compile", why=shape["why"])
    return {
        "choice": full[0]["choice"],
        "backend": full[0]["backend"],
        "processes": len(full),
        "shapes_held_at_most": max((r["shapes_held_at_most"] or 0) for r in full) or None,
        "compile_seconds": round(sum(r["compile_seconds"] for r in full), 2),
        "load_seconds": round(sum(r["load_seconds"] for r in full), 2),
        "packages": {k: sum(r["packages"][k] for r in full) for k in ("compiled", "loaded")},
        "shapes_released": sum(r["shapes_released"] for r in full),
        "speedup": full[0].get("speedup"),  # one cache and machine: the same for every process
        "failed": sorted({why for r in full for why in r["failed"]}),
        "shapes": shapes,
    }
