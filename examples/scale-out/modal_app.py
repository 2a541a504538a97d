"""Shards of an R2 prefix on Modal, the deployed system's platform: one T4 (or any GPU) per shard.

    modal secret create modomo-r2-credentials R2_ENDPOINT_URL=... R2_ACCESS_KEY_ID=... \\
        R2_SECRET_ACCESS_KEY=... R2_BUCKET_NAME=... CDN_DOMAIN=...
    modal run examples/scale-out/modal_app.py --prefix r2://catalogue/rooms/ --out r2://catalogue/restyled/ --shards 8
"""

import subprocess

import modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install("torch==2.14.1", "torchvision==0.29.1")
    .add_local_dir(".", "/modomo", copy=True, ignore=[".venv", "out", ".git"])
    .run_commands(
        "pip install --no-build-isolation sam2 && pip install /modomo", "modomo models download sd15"
    )  # weights baked into the image: no download per job
)
app = modal.App("modomo-restyle", image=image)


@app.function(gpu="T4", timeout=4 * 3600, secrets=[modal.Secret.from_name("modomo-r2-credentials")])
def shard(prefix: str, out: str, style: str, index: int, count: int) -> str:
    done = subprocess.run(
        ["modomo", "transform", prefix, "--style", style, "--out", out, "--shard", f"{index}/{count}", "--json"],
        capture_output=True,
        text=True,
    )
    return done.stdout


@app.local_entrypoint()
def main(prefix: str, out: str, style: str = "modern", shards: int = 4):
    results = shard.starmap([(prefix, out, style, i, shards) for i in range(shards)])
    for index, summary in enumerate(results):
        print(f"shard {index}/{shards}: {summary[:200]}")
