"""Every option of `modomo transform`, set to a value other than the base command's, reaches the plan: parsed from
a real command line, the plan's options hold it (in canonical form), and an option that shapes the run changes what
the plan derives (settings, hashes, load options, inputs, names, engine). The table below is checked against the
options type, so a new option must say here what it changes."""

from __future__ import annotations

import re
import shutil
from dataclasses import fields, replace
from pathlib import Path

import pytest
import typer

from modomo_cli.app import app
from pipeline.models.placement import pick_device
from pipeline.models.precision import resolve as resolve_dtype
from pipeline.options import TransformOptions
from pipeline.run.plan import build_plan
from styles import STYLE_DIR

REPO = Path(__file__).resolve().parents[2]

# Read by the run from the plan's options, not derived by the plan: where each acts.
RUNTIME = {
    "resume": "run/resume.py: which jobs are skipped",
    "overwrite": "run/resume.py: which jobs are skipped",
    "fail_fast": "run/runner.py: stops at the first failure",
    "device": "run/engines/local.py: the device the stack loads on",
    "workers": "run/runner.py: the read and write threads",
    "compile": "run/runner.py: the denoising models compiled per shape (models/compiled)",
    "actors": "run/engines/ray.py: the actor pool",
    "gpu_price": "run/engines: the price of a GPU-hour",
    "currency": "run/engines: the price's currency",
    "events": "modomo_cli/transform.py: the events file",
    "as_json": "modomo_cli/transform.py: the summary as JSON",
    "progress": "modomo_cli/transform.py: the progress bar",
    "dry_run": "modomo_cli/transform.py: the plan shown, nothing run",
}


def other_dtype() -> str:
    """A --dtype that resolves to another format than auto does on this machine."""
    return "fp32" if resolve_dtype("auto", pick_device("auto")) != "fp32" else "bf16"


def cases(files: dict) -> dict[str, tuple[list, list, object]]:
    """Per option: (what both commands add, what the varied one adds, the value the plan's options hold; None for
    the value as parsed)."""
    both_ref = ["--style-ref", str(files["photo"])]
    signed = ["--sign-cert", str(files["cert"]), "--sign-key", str(files["key"])]
    return {
        "inputs": ([], [str(files["more"])], None),
        "out": ([], ["--out", str(files["other_out"])], None),
        "format": ([], ["--format", "JPG"], "jpeg"),
        "resume": ([], ["--no-resume"], None),
        "overwrite": ([], ["--overwrite"], None),
        "fail_fast": ([], ["--fail-fast"], None),
        "style": ([], ["--style", "boho"], None),
        "style_file": ([], ["--style-file", str(files["style_file"])], None),
        "room": ([], ["--room", "Bedroom"], "bedroom"),
        "seed": ([], ["--seed", "7"], None),
        "steps": ([], ["--steps", "3"], None),
        "guidance_scale": ([], ["--guidance-scale", "4.5"], None),
        "lora": ([], ["--lora", f"{files['lora']}:0.5"], None),
        "style_ref": ([], both_ref, None),
        "style_ref_scale": (both_ref, ["--style-ref-scale", "0.3"], None),
        "models": ([], ["--models", "tiny"], None),
        "size": ([], ["--size", "96"], None),
        "device": ([], ["--device", "cpu"], None),
        "dtype": ([], ["--dtype", other_dtype()], None),
        "checkpoint": ([], ["--checkpoint", str(files["checkpoint"])], None),
        "min_quality": ([], ["--min-quality", "0.5"], None),
        "retries": ([], ["--retries", "0"], None),
        "mode": ([], ["--mode", "Declutter"], "declutter"),
        "remove": ([], ["--remove", "TV"], None),
        "preserve": ([], ["--preserve", "sofa"], None),
        "mask_dir": ([], ["--mask-dir", str(files["masks"])], None),
        "fidelity": ([], ["--fidelity", "strict"], None),
        "variations": ([], ["--variations", "2"], None),
        "output_size": ([], ["--output-size", "Original"], "original"),
        "report": ([], ["--report"], None),
        "contact_sheet": ([], ["--contact-sheet"], None),
        "save_controls": ([], ["--save-controls"], None),
        "disclose": ([], ["--disclose", "  Virtually staged "], "Virtually staged"),
        "disclose_qr": (["--publish-originals", "--disclose", "Virtually staged"], ["--disclose-qr"], None),
        "publish_originals": ([], ["--publish-originals"], None),
        "manifest": ([], ["--manifest", str(files["manifest"])], None),
        "sets_by": ([], ["--sets-by", "parent"], None),
        "name_template": ([], ["--name", "{stem}-{style}-x"], None),
        "events": ([], ["--events", str(files["events"])], None),
        "sign_cert": ([], signed, None),
        "sign_key": ([], signed, None),
        "shard": ([], ["--shard", "1/2"], None),
        "devices": ([], ["--devices", "cpu,cpu"], None),
        "engine": ([], ["--engine", "ray"], None),
        "actors": (["--engine", "ray"], ["--actors", "2"], None),
        "batch_size": ([], ["--batch-size", "2"], None),
        "workers": ([], ["--workers", "2"], None),
        "compile": ([], ["--compile", "OFF"], "off"),
        "fast": ([], ["--fast"], None),
        "fast_recipe": ([], ["--fast-recipe", "tcd"], None),
        "gpu_price": ([], ["--gpu-price", "1.5"], None),
        "currency": (["--gpu-price", "1.5"], ["--currency", "GBP"], None),
        "as_json": ([], ["--json"], None),
        "progress": ([], ["--no-progress"], None),
        "dry_run": ([], ["--dry-run"], None),
    }


@pytest.fixture(scope="module")
def files(tiny_bundle, rooms, signing_chain, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("options")
    made = {name: root / name for name in ("in", "more", "masks", "other_out")}
    for folder in made.values():
        folder.mkdir()
    (made["in"] / "room").mkdir()
    shutil.copy(rooms / "living-room-02-small.jpg", made["in"] / "room" / "a.jpg")
    shutil.copy(rooms / "living-room-02-small.jpg", made["more"] / "b.jpg")
    text = (STYLE_DIR / "boho.toml").read_text().replace('name = "boho"', 'name = "mine"')
    (root / "mine.toml").write_text(text)
    (root / "lora.safetensors").write_bytes(b"")  # read at load: the plan checks it is there
    (root / "tuned.safetensors").write_bytes(b"")
    (root / "jobs.csv").write_text(f"input,style\n{made['in'] / 'room' / 'a.jpg'},boho\n")
    return {
        **made,
        "bundle": tiny_bundle,
        "photo": made["in"] / "room" / "a.jpg",
        "style_file": root / "mine.toml",
        "lora": root / "lora.safetensors",
        "checkpoint": root / "tuned.safetensors",
        "manifest": root / "jobs.csv",
        "events": root / "events.jsonl",
        "cert": signing_chain.cert,
        "key": signing_chain.key,
        "out": root / "out",
    }


def parse(argv: list) -> TransformOptions:
    """The options a real command line gives `modomo transform`."""
    command = typer.main.get_command(app).commands["transform"]
    return TransformOptions(**command.make_context("transform", [str(a) for a in argv]).params)


def base_argv(files: dict, varied: list) -> list:
    """The base command: one folder of photos, the tiny models from a folder, a small working size."""
    inputs = [] if "--manifest" in varied else [files["in"]]
    return [*inputs, "--out", files["out"], "--models", files["bundle"], "--size", "128"]


def view(plan) -> dict:
    """What the plan derives from the options (not the options themselves)."""
    config = plan.config
    styles = [*config.styles, *config.job_styles]
    return {
        "settings": {s.name: config.settings_json(s) for s in styles},
        "generate": {s.name: config.generate_settings(s) for s in styles},
        "hashes": plan.result_hashes(),
        "load": config.load_options(),
        "derived": (config.recipe, config.loras, config.keep_labels, config.precision, config.signing is not None),
        "writes": (
            config.save_controls,
            config.photos_per_batch,
            plan.sink.location if hasattr(plan.sink, "location") else str(plan.sink.root),
        ),
        "references": sorted(config.references),
        "inputs": [(item.key, item.group, item.job is not None) for item in plan.items],
        "stems": {s.name: sorted(plan.stems(s.name).values()) for s in styles},
        "engine": (plan.engine, plan.devices, str(plan.shard)),
    }


def test_the_table_names_every_option():
    assert set(cases({k: "" for k in ("photo", "cert", "key", *FILE_KEYS)})) == {
        f.name for f in fields(TransformOptions)
    }
    assert set(RUNTIME) <= {f.name for f in fields(TransformOptions)}


FILE_KEYS = ("more", "other_out", "style_file", "lora", "checkpoint", "masks", "manifest", "events")


def test_every_option_reaches_the_plan(files, monkeypatch):
    monkeypatch.delenv("MODOMO_SHARD", raising=False)
    base = {}
    for name, (both, varied, held) in cases(files).items():
        given = parse([*base_argv(files, varied), *both])
        if tuple(both) not in base:
            base[tuple(both)] = view(build_plan(given))
        options = parse([*base_argv(files, varied), *both, *varied])
        assert getattr(options, name) != getattr(given, name), f"{name}: the varied command does not change it"
        plan = build_plan(options)
        expected = getattr(options, name) if held is None else held
        assert getattr(plan.config.options, name) == expected, f"{name}: the plan holds another value"
        if name not in RUNTIME:
            assert view(plan) != base[tuple(both)], f"{name}: the plan derives nothing from it"


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_each_run_time_option_is_read_where_it_acts(name):
    """An option the plan only carries is read by the code the table names."""
    where = RUNTIME[name].split(":")[0]
    paths = sorted((REPO / "pipeline").glob(f"{where.removeprefix('pipeline/')}/**/*.py")) or [
        path for path in [REPO / where, REPO / "pipeline" / where] if path.is_file()
    ]
    assert paths, where
    assert any(re.search(rf"\boptions\.{name}\b", path.read_text()) for path in paths), f"{name} not read in {where}"


def test_the_bench_plans_the_options_it_shares_with_transform_as_transform_does(files, monkeypatch):
    """`modomo bench`'s options that `transform` has too reach its plan as transform's do (the same checks,
    the same canonical form): each set to transform's varied value."""
    from pipeline.bench.setup import bench_setup
    from pipeline.options import BenchCommandOptions, field_names

    shared = set(field_names(TransformOptions)) & set(field_names(BenchCommandOptions))
    assert {"seed", "steps", "style", "room", "dtype", "fast_recipe", "style_ref_scale"} <= shared
    base = BenchCommandOptions(models=str(files["bundle"]), size=128)
    for name in sorted(shared):
        both, varied, held = cases(files)[name]
        value = getattr(parse([*base_argv(files, varied), *both, *varied]), name)
        if value == getattr(base, name):  # transform's varied value is the bench's default
            value = {"style": "modern", "retries": 1}[name]
        given = {"style_ref": str(files["photo"])} if "--style-ref" in both else {}
        given.update({"gpu_price": 1.5} if "--gpu-price" in both else {})
        setup = bench_setup(replace(base, **given, **{name: value}))
        expected = value if held is None else held
        assert getattr(setup.config.options, name) == expected, f"bench {name}: the plan holds another value"
