"""Accuracy of `--room auto`: the preset's CLIP over photos whose room type is known.

Photos are labelled by the folder they are in (`DIR/bedroom/x.jpg` is a bedroom), or all with
`--label`. Prints each photo's top room type with its probability and the share right.

    python benchmarks/room_accuracy.py ../shared/rooms --label "living room" --models sd15
    python benchmarks/room_accuracy.py labelled-photos/ --models sd15 --out benchmarks/room_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--label", help="the room type of every photo (else: each photo's folder name)")
    parser.add_argument("--models", default="sd15")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    from pipeline.inputs import imaging
    from pipeline.inputs.sources import walk_images
    from pipeline.models.catalog import resolve
    from pipeline.models.loaders import WeightLoaders
    from pipeline.models.placement import pick_device
    from pipeline.stages.room import RoomClassifier
    from styles import room_name

    device = pick_device("auto")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    spec = resolve(args.models)
    clip = WeightLoaders(spec).clip(device, dtype)
    if clip is None:
        raise SystemExit(f"{spec.name} has no CLIP on this machine: `modomo models download sd15` first")
    classify = RoomClassifier(*clip, device, dtype)
    rows = []
    for path in sorted(walk_images(args.folder)):
        if ".restyled." in path.name:
            continue
        truth = room_name(args.label or path.parent.name)
        image = imaging.decode(path.read_bytes(), str(path))
        probs = classify.probabilities([image])[0]
        best = max(probs, key=probs.get)
        rows.append(
            {
                "photo": str(path),
                "truth": truth,
                "predicted": best,
                "probability": round(probs[best], 4),
                "probability_of_truth": round(probs.get(truth, 0.0), 4) if truth else None,
            }
        )
        print(json.dumps(rows[-1]))
    labelled = [r for r in rows if r["truth"]]
    accuracy = sum(r["truth"] == r["predicted"] for r in labelled) / len(labelled) if labelled else None
    report = {
        "command": " ".join(["python", "benchmarks/room_accuracy.py", *sys.argv[1:]]),
        "models": spec.ids(),
        "photos": len(rows),
        "accuracy": accuracy,
        "rows": rows,
    }
    print(f"accuracy {accuracy} over {len(labelled)} labelled photos")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
