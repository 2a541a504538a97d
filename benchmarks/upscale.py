"""What a result at the photo's own size costs: a 768x576 result to a 4032x3024 output (a 12 MP phone photo)
through the upscale stage, with Lanczos alone, with the tiny bundle's network, and with Real-ESRGAN x4plus's
full-size architecture (random weights: the same FLOPs as RealESRGAN_x4plus.pth). Seconds per output megapixel
and peak memory: the process's RSS above what it held before the stage (CPU), or torch's CUDA peak above what
was allocated before it. Each case runs in its own process, so one case's peak is not another's.

    python benchmarks/upscale.py                      # CPU: writes benchmarks/upscale-cpu.json
    python benchmarks/upscale.py --device cuda        # writes benchmarks/upscale-cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "rooms" / "living-room-01.jpg"
CASES = ("lanczos", "tiny", "x4plus")
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the repository's own pipeline package


def release_freed_memory() -> None:
    """Hand freed heap back to the system, so the baseline RSS is what the process holds, not what it once did."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline is a little high, the delta a little low
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the process's RSS every few milliseconds on a thread: the peak of a stretch of work."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self.stop = every, rss_bytes(), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_bytes())


def build(case: str, device):
    """The case's network as a run loads it (None: Lanczos alone), and the seconds building it took."""
    from pipeline.models import upscaler

    start = time.perf_counter()
    if case == "lanczos":
        return None, 0.0
    shape = upscaler.X4PLUS if case == "x4plus" else {"num_filters": 8, "num_blocks": 1, "scale": 4}
    model = upscaler.descriptor(upscaler.build_random(**shape, device=device), device)
    return model, time.perf_counter() - start


def child(args) -> dict:
    """One case, in this process: build, then time the stage on one frame and measure its peak memory."""
    import torch
    from PIL import Image

    from pipeline.frames import Frame, Item
    from pipeline.stages.upscale import Upscaler, windows

    device = torch.device(args.device)
    model, build_seconds = build(args.case, device)
    size, target = parse_size(args.result), parse_size(args.target)
    photo = Image.open(PHOTO)
    photo.draft("RGB", size)  # decode the JPEG at a reduced scale: the full photo's bytes are not the stage's
    result = photo.convert("RGB").resize(size, Image.LANCZOS)
    stage = Upscaler(
        model, device if model is not None else None, tile=args.tile, overlap=args.overlap, batch=args.batch
    )
    frame = Frame(
        item=Item(key="room.jpg", path=PHOTO, root=PHOTO.parent),
        seed=0,
        image=result,
        result=result,
        target_size=target,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    release_freed_memory()
    before, cuda_before = rss_bytes(), torch.cuda.memory_allocated() if device.type == "cuda" else 0
    with PeakRss() as rss:
        start = time.perf_counter()
        stage([frame])
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    assert frame.result.size == target, frame.result.size
    megapixels = target[0] * target[1] / 1e6
    record = {
        "seconds": round(seconds, 3),
        "seconds_per_output_mp": round(seconds / megapixels, 4),
        "peak_rss_delta_mb": round((rss.peak - before) / 2**20, 1),
        "build_seconds": round(build_seconds, 2),
        "tiles": len(list(windows(*size, stage.tile, stage.overlap))) if model is not None else 0,
        "batch": stage.batch if model is not None else None,
        "dtype": str(stage.dtype).removeprefix("torch.") if model is not None else None,
    }
    if device.type == "cuda":
        record["cuda_peak_delta_mb"] = round((torch.cuda.max_memory_allocated() - cuda_before) / 2**20, 1)
    if model is not None:
        record["parameters"] = sum(p.numel() for p in model.model.parameters())
    return record


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def machine(device: str) -> dict:
    import torch

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    info = {
        "cpu": model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--result", default="768x576", help="the working-size result")
    parser.add_argument("--target", default="4032x3024", help="the output size")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch", type=int, default=None, help="tiles per network call (default: the stage's)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(child(args)))
        return 0
    cases = {}
    info = machine(args.device)
    for case in args.cases.split(","):
        command = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--device",
            args.device,
            "--result",
            args.result,
            "--target",
            args.target,
            "--tile",
            str(args.tile),
            "--overlap",
            str(args.overlap),
        ]
        command += ["--batch", str(args.batch)] if args.batch else []
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"case {case} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
        cases[case] = json.loads(done.stdout.strip().splitlines()[-1])
        print(case, json.dumps(cases[case]), flush=True)
    shown = "python benchmarks/upscale.py" + (f" --device {args.device}" if args.device != "cpu" else "")
    tag = "cpu" if args.device == "cpu" else args.device.split(":")[0]
    record = {
        "command": shown,
        "result": list(parse_size(args.result)),
        "target": list(parse_size(args.target)),
        "output_megapixels": round(parse_size(args.target)[0] * parse_size(args.target)[1] / 1e6, 2),
        "tile": args.tile,
        "overlap": args.overlap,
        "machine": info,
        "cases": cases,
    }
    out = Path(args.out) if args.out else Path(__file__).with_name(f"upscale-{tag}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out} ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
