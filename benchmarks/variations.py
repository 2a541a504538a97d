"""`--variations 4` against four separate runs (four seeds) over the same photos: run seconds (model load
apart, reported on its own) and the stage table of each.

    python benchmarks/variations.py                                   # tiny models, 512 px
    python benchmarks/variations.py --models random-sd15 --size 256 --steps 8

Writes benchmarks/variations-MODELS-SIZE.json. The separate runs get each model load once more; the
comparison below leaves load out of both, so it measures only what the shared stages and the batch save.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ROOT.parent / "shared" / "rooms"


def transform(photos: Path, out: Path, args, *extra: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "modomo_cli",
        "transform",
        str(photos),
        "--models",
        args.models,
        "--out",
        str(out),
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--retries",
        "0",
        "--style",
        "boho",
        "--room",
        "living room",
        "--json",
        "--no-progress",
        *extra,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    return json.loads(done.stdout)


def brief(summary: dict) -> dict:
    return {
        "seconds": round(summary["seconds"], 3),
        "load_seconds": round(summary["load_seconds"], 3),
        "results": sum(max(1, len(r.get("variations", []))) for r in summary["images"] if r["status"] == "ok"),
        "batching": summary["batching"],
        "stages": {k: round(v["mean"], 4) for k, v in summary["stages"].items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modomo-variations-") as scratch:
        photos = Path(scratch) / "in"
        photos.mkdir()
        for photo in sorted(ROOMS.glob("living-room-*.jpg")):
            (photos / photo.name).write_bytes(photo.read_bytes())
        separate = [
            brief(transform(photos, Path(scratch) / f"seed{k}", args, "--seed", str(k))) for k in range(args.count)
        ]
        together = brief(transform(photos, Path(scratch) / "together", args, "--variations", str(args.count)))
    apart = sum(run["seconds"] for run in separate)
    report = {
        "command": " ".join(["python", "benchmarks/variations.py", *sys.argv[1:]]),
        "photos": len(list(ROOMS.glob("living-room-*.jpg"))),
        "variations": args.count,
        "separate_runs": separate,
        "one_run": together,
        "separate_seconds": round(apart, 3),
        "one_run_seconds": together["seconds"],
        "ratio": round(together["seconds"] / apart, 3),
        # CPU timings swing between runs: also against the fastest separate run taken four times.
        "ratio_vs_fastest": round(together["seconds"] / (args.count * min(r["seconds"] for r in separate)), 3),
        "separate_seconds_with_load": round(apart + sum(r["load_seconds"] for r in separate), 3),
        "one_run_seconds_with_load": round(together["seconds"] + together["load_seconds"], 3),
    }
    name = f"variations-{args.models}-{args.size}.json"
    Path(__file__).with_name(name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("separate_runs", "one_run")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
