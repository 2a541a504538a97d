"""Mixed aspect ratios keep their batch: 12 real room crops, landscape / portrait / square interleaved,
through `modomo transform --batch-size 4` on the tiny models; the summary's `batching`.

    python benchmarks/mixed_batch.py                      # writes benchmarks/mixed_batch.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ROOT.parent / "shared" / "rooms"
SHAPES = [(1200, 900), (900, 1200), (1000, 1000)]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="modomo-mixed-") as scratch:
        folder = Path(scratch) / "in"
        folder.mkdir()
        photo = Image.open(ROOMS / "living-room-02-small.jpg").convert("RGB")
        for i in range(12):
            photo.resize(SHAPES[i % 3]).save(folder / f"{i:02d}.jpg", quality=90)
        command = [
            "modomo",
            "transform",
            str(folder),
            "--models",
            "tiny",
            "--out",
            str(Path(scratch) / "out"),
            "--size",
            "128",
            "--steps",
            "2",
            "--retries",
            "0",
            "--batch-size",
            "4",
            "--json",
        ]
        done = subprocess.run(
            [sys.executable, "-m", "modomo_cli", *command[1:]],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    batching = json.loads(done.stdout)["batching"]
    shown = ["DIR" if arg == str(folder) else "OUT" if arg.endswith("/out") else arg for arg in command]
    record = {"command": "python benchmarks/mixed_batch.py", "runs": " ".join(shown), "batching": batching}
    Path(__file__).with_name("mixed_batch.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(batching))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
