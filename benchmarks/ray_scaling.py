"""Per-image cost of `--engine ray` as the input list grows: the same tiny-model transform over 50 and over
200 inputs, two actors, on the CPU. With per-run work done once per actor (models, output names) and the
journal read once by the driver, time per image must not grow with the number of batches.

    python benchmarks/ray_scaling.py                       # writes benchmarks/ray_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

ROOMS = Path(__file__).resolve().parents[2] / "shared" / "rooms"


def inputs(folder: Path, count: int) -> Path:
    photo = Image.open(ROOMS / "living-room-02-small.jpg").convert("RGB").resize((160, 120))
    folder.mkdir(parents=True)
    for i in range(count):
        (photo.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else photo).save(folder / f"room-{i:04d}.jpg")
    return folder


def run(bundle: Path, folder: Path, out: Path, actors: int, batch: int) -> dict:
    from typer.testing import CliRunner

    from modomo_cli.app import app

    args = [
        "transform",
        str(folder),
        "--models",
        str(bundle),
        "--out",
        str(out),
        "--size",
        "128",
        "--steps",
        "2",
        "--retries",
        "0",
        "--engine",
        "ray",
        "--actors",
        str(actors),
        "--batch-size",
        str(batch),
        "--json",
    ]
    start = time.perf_counter()
    result = CliRunner().invoke(app, args)
    wall = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    done = summary["counts"]["ok"]
    return {
        "inputs": done,
        "wall_seconds": wall,
        "run_seconds": summary["seconds"],
        "seconds_per_image": summary["seconds"] / done,
        "load_seconds": summary["load_seconds"],
        "journal_reads": summary["journal_reads"],
        "actors": summary["actors"],
        "batching": summary["batching"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ray_scaling.json"))
    args = parser.parse_args()
    import ray

    from pipeline.models.tiny import build_tiny_bundle

    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="modomo-ray-") as scratch:
        scratch = Path(scratch)
        bundle = build_tiny_bundle(scratch / "tiny")
        for count in map(int, args.sizes.split(",")):
            rows.append(
                run(
                    bundle,
                    inputs(scratch / f"in-{count}", count),
                    scratch / f"out-{count}",
                    args.actors,
                    args.batch_size,
                )
            )
            print(json.dumps(rows[-1]), flush=True)
    ray.shutdown()
    first, last = rows[0], rows[-1]
    marginal = (last["run_seconds"] - first["run_seconds"]) / (last["inputs"] - first["inputs"])
    report = {
        "command": "python benchmarks/ray_scaling.py",
        "machine": f"{os.cpu_count()} CPU cores",
        "runs": rows,
        "per_image_ratio_last_to_first": last["seconds_per_image"] / first["seconds_per_image"],
        "marginal_seconds_per_image": marginal,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"per image: {first['seconds_per_image']:.3f} s over {first['inputs']}, "
        f"{last['seconds_per_image']:.3f} s over {last['inputs']} "
        f"(ratio {report['per_image_ratio_last_to_first']:.2f}); journal reads {last['journal_reads']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
