"""`modomo doctor` and `modomo models`: offline, clear, and right about what is cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modomo_cli.app import app
from pipeline.doctor import model_files
from pipeline.models import ip_adapter
from pipeline.models.inventory import CONTROLNET_FILES, SEGMENTER_FILES
from pipeline.models.presets import sd15


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def fake_hub_cache(home: Path, repo: str, filename: str) -> None:
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/REV/FILE}."""
    folder = home / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("0" * 40)
    target = folder / "snapshots" / ("0" * 40) / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"weights")


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # The hub library reads HF_HOME when it is imported; point its cache at the empty folder too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    for name in ("R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME", "CDN_DOMAIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hf"


def test_doctor_reports_missing_weights_and_exits_1(empty_caches):
    result = invoke("doctor", "--json")
    assert result.exit_code == 1
    checks = {(c["area"], c["name"]): c for c in json.loads(result.stdout)}
    assert checks[("system", "python")]["status"] == "ok"
    assert checks[("system", "torch")]["status"] == "ok"
    for role in ("stable diffusion", "controlnet depth", "controlnet canny", "depth", "sam2", "yolo"):
        assert checks[("sd15", role)]["status"] == "missing"
        assert checks[("sd15", role)]["required"] is True
        assert "modomo models download" in checks[("sd15", role)]["detail"]
    for role in ("clip", "upscaler", "ip-adapter"):  # optional: a warning, not a problem
        assert checks[("sd15", role)]["status"] == "warn"
        assert checks[("sd15", role)]["required"] is False
        assert "modomo models download" in checks[("sd15", role)]["detail"]
    assert checks[("r2", "R2_BUCKET_NAME")]["detail"] == "not set"
    assert "6 problem(s)" in result.stderr


def cache_repo(home: Path, repo: str, groups) -> None:
    """The first file of each group of a hub repo's files, as the download leaves them."""
    for group in groups:
        fake_hub_cache(home, repo, group[0])


def cache_required(home: Path) -> None:
    """Every weight `modomo transform` needs with its defaults, and none of the optional ones."""
    from pipeline.models import inventory as files

    spec = sd15()
    cache_repo(home, spec.sd, [(c,) for c in files.SD_CONFIGS] + list(files.SD_WEIGHTS))
    cache_repo(home, spec.controlnet_depth, files.CONTROLNET_FILES)
    cache_repo(home, spec.controlnet_canny, files.CONTROLNET_FILES)
    cache_repo(home, spec.depth, files.DEPTH_FILES)
    fake_hub_cache(home, "facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt")
    Path(spec.yolo).write_bytes(b"weights")  # in the working folder, where modomo looks first


def test_doctor_is_happy_when_everything_is_cached(empty_caches, monkeypatch):
    spec = sd15()
    cache_required(empty_caches)
    fake_hub_cache(empty_caches, spec.clip, "config.json")
    fake_hub_cache(empty_caches, "lllyasviel/Annotators", "RealESRGAN_x4plus.pth")
    cache_repo(empty_caches, spec.controlnet_lines, CONTROLNET_FILES)
    cache_repo(empty_caches, spec.segmenter, SEGMENTER_FILES)
    cache_repo(empty_caches, spec.controlnet_inpaint, CONTROLNET_FILES)
    fake_hub_cache(empty_caches, *spec.lama.removeprefix("hub:").rsplit("/", 1))
    for name in ip_adapter.hub_files():  # the adapter and its image encoder
        fake_hub_cache(empty_caches, spec.ip_adapter, name)
    assert all(path for _, _, path in model_files(spec))
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "missing" not in result.stderr
    listed = json.loads(invoke("models", "list", "--json").stdout)
    assert all(row["cached"] for row in listed)


def test_doctor_checks_the_bucket(empty_caches, moto_server, r2_env, monkeypatch):
    result = invoke("doctor", "--json")
    checks = {(c["area"], c["name"]): c for c in json.loads(result.stdout)}
    assert checks[("r2", "bucket")]["status"] == "ok"
    assert checks[("r2", "R2_SECRET_ACCESS_KEY")]["detail"] == "set"
    assert moto_server.secret_access_key not in result.output
    monkeypatch.setenv("R2_BUCKET_NAME", "no-such-bucket")
    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    bucket = checks[("r2", "bucket")]  # R2 is optional: `modomo transform` writes to a local folder by default
    assert bucket["status"] == "warn" and not bucket["required"] and "does not exist" in bucket["detail"]


def test_models_list_offline(empty_caches):
    result = invoke("models", "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["preset"] for r in rows} == {"sd15", "tiny", "random-sd15"}
    assert not any(r["cached"] for r in rows if r["preset"] == "sd15" and r["model"] != "sam2 config")  # a package file
    assert invoke("models", "list").exit_code == 0


def test_models_download_offline_is_one_line(empty_caches):
    result = invoke("models", "download", "sd15")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: cannot download") and "Traceback" not in result.output


def test_export_tiny_writes_a_loadable_bundle(tmp_path, rooms):
    folder = tmp_path / "bundle"
    assert invoke("models", "export-tiny", folder).exit_code == 0
    assert (folder / "modomo-bundle.json").is_file() and (folder / "stable-diffusion" / "unet").is_dir()
    result = invoke(
        "transform",
        rooms / "living-room-02-small.jpg",
        "--models",
        folder,
        "--out",
        tmp_path / "out",
        "--size",
        "128",
        "--steps",
        "1",
        "--retries",
        "0",
    )
    assert result.exit_code == 0, result.output
    again = invoke("models", "export-tiny", folder)
    assert again.exit_code == 2 and "not empty" in again.stderr


def test_doctor_lists_each_fast_lora_as_optional(empty_caches):
    from pipeline.models.recipes import RECIPES

    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    for name, recipe in RECIPES.items():
        row = checks[("sd15", f"fast lora {name}")]
        assert row["status"] == "warn" and not row["required"]
        assert row["enables"].startswith("--fast")
        assert recipe.hub_id in row["detail"]
        assert f"modomo models download sd15 --fast --fast-recipe {name}" in row["detail"]
    fake_hub_cache(empty_caches, RECIPES["tcd"].repo, RECIPES["tcd"].file)
    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    assert checks[("sd15", "fast lora tcd")]["status"] == "ok"
    assert checks[("sd15", "fast lora lcm")]["status"] == "warn"


def test_doctor_without_optional_parts_warns_and_exits_0(empty_caches):
    """Every required weight but no CLIP, upscaler or fast LoRA: `modomo transform` runs with its defaults, so
    the exit code is 0; each missing part is one warning saying what it enables."""
    cache_required(empty_caches)
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "problem" not in result.stderr
    warnings = {
        line.split(":")[0].removeprefix("warning ").strip(): line
        for line in result.stderr.splitlines()
        if line.startswith("warning ")
    }
    assert "--room auto" in warnings["sd15 clip"] and "style part of the score" in warnings["sd15 clip"]
    assert "--output-size" in warnings["sd15 upscaler"]
    assert warnings["sd15 fast lora lcm"].endswith("enables --fast")
    assert warnings["sd15 fast lora tcd"].endswith("enables --fast --fast-recipe tcd")
    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    assert checks[("sd15", "stable diffusion")]["status"] == "ok" and checks[("sd15", "stable diffusion")]["required"]
    assert checks[("sd15", "clip")]["status"] == "warn" and not checks[("sd15", "clip")]["required"]
    assert "--room auto" in checks[("sd15", "clip")]["enables"]


def test_doctor_prints_the_version(empty_caches):
    from pipeline import __version__

    assert f"modomo {__version__}" in invoke("doctor").stderr
    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    assert checks[("system", "modomo")]["detail"] == __version__


def column_text(output: str, heading: str) -> str:
    """One column of a Rich table, its lines joined with the box characters and padding removed: a folded
    id reads whole again."""
    rows = [line for line in output.splitlines() if line.startswith(("┃", "│"))]
    headings = [cell.strip() for cell in rows[0].strip("┃").split("┃")]
    k = headings.index(heading)
    return "".join(line.strip("│").split("│")[k].strip() for line in rows[1:])


@pytest.mark.parametrize("command, heading", [(["models", "list"], "id"), (["doctor"], "detail")])
def test_long_model_ids_fold_at_80_columns(empty_caches, command, heading):
    result = CliRunner().invoke(app, command, env={"COLUMNS": "80"})
    assert max(len(line) for line in result.stderr.splitlines() if line[:1] in "┏┃┡│└") <= 80  # the table fits
    assert "…" not in result.stderr
    text = column_text(result.stderr, heading)
    for model_id in ("stable-diffusion-v1-5/stable-diffusion-v1-5", "lllyasviel/control_v11f1p_sd15_depth"):
        assert model_id in text


def test_doctor_lists_the_lines_controlnet_and_segmentation_as_optional(empty_caches):
    spec = sd15()
    cache_required(empty_caches)
    result = invoke("doctor", "--json")
    assert result.exit_code == 0, result.output  # what transform needs with its defaults is all there
    checks = {(c["area"], c["name"]): c for c in json.loads(result.stdout)}
    lines, parts = checks[("sd15", "controlnet lines")], checks[("sd15", "segmentation")]
    assert lines["status"] == parts["status"] == "warn" and not lines["required"] and not parts["required"]
    assert spec.controlnet_lines in lines["detail"] and "straight" in lines["enables"]
    assert spec.segmenter in parts["detail"] and "--preserve" in parts["enables"]
    fake_hub_cache(empty_caches, spec.segmenter, "config.json")
    fake_hub_cache(empty_caches, spec.segmenter, "pytorch_model.bin")  # the repo's older format counts too
    checks = {(c["area"], c["name"]): c for c in json.loads(invoke("doctor", "--json").stdout)}
    assert checks[("sd15", "segmentation")]["status"] == "ok"
