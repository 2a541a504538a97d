"""PNG compression level against encode time and size, on a 4032x3024 generated-like picture: a real room photo
upscaled to 12 MP with a little noise (a generated result is never as smooth as a plain upscale).

    .venv/bin/python benchmarks/png_level.py [photo] [--repeat 3] [--noise 4]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image


def picture(path: str, sigma: float) -> Image.Image:
    """The photo at 4032x3024 with Gaussian noise of `sigma` (fixed seed)."""
    image = Image.open(path).convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(0).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("photo", nargs="?", default="/work/shared/rooms/living-room-01.jpg")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noise", type=float, default=4.0, help="sigma of the added noise (0: a plain upscale)")
    args = parser.parse_args()
    image = picture(args.photo, args.noise)
    for level in (1, 3, 6):
        times = []
        for _ in range(args.repeat):
            buffer = io.BytesIO()
            start = time.perf_counter()
            image.save(buffer, "PNG", compress_level=level)
            times.append(time.perf_counter() - start)
        size = buffer.tell()
        print(f"level {level}: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s, {size:,} bytes")


if __name__ == "__main__":
    main()
