"""`modomo bench --compile on` on the CPU keeps the speed-up it measured (compiled against the same images eager),
and the next bench's `--compile auto` weighs that speed-up instead of the assumed one. The stand-in backend (plain
torch.export: tests/models/test_compiled.py) keeps it quick; AOTInductor itself is tests/run/test_compile_run.py's."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from modomo_cli.app import app

SMALL = ["--images", "2", "--warmup", "0", "--size", "128", "--synthetic-size", "160x120", "--steps", "2"]


def bench(bundle, *extra) -> tuple[dict, str]:
    result = CliRunner().invoke(app, ["bench", "--models", str(bundle), *SMALL, "--dtype", "bf16", *extra, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_the_measured_speedup_is_kept_and_weighed_by_the_next_auto(tiny_bundle, tmp_path, monkeypatch):
    from pipeline.models.compiled import backends

    monkeypatch.setenv("MODOMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("pipeline.models.compiled.denoisers.AOTInductor", backends.ExportOnly)
    compiled, _ = bench(tiny_bundle, "--compile", "on")
    measured = compiled["compile"]["eager"]["speedup"]
    assert measured > 0
    (kept,) = json.loads((tmp_path / "cache" / "compiled" / "speedups.json").read_text()).values()
    assert kept["speedup"] == round(measured, 3)

    summary, stderr = bench(tiny_bundle, "--compile", "auto")
    assert f"at {round(measured, 3):.2f}x (measured by the bench on this machine)" in summary["compile"]["why"]
    assert "measured by the bench on this machine" in stderr  # the compile line says what it weighed
