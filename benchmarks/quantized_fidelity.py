"""Does a quantized bundle keep the default world's fidelity? (issue 5: both-correct within 2 points of fp32)

The fp32 and the int8 XNNPACK bundles of the default world (exported into .cache/bundles/ on first use) generate
the same test pairs with the native engine, same seeds; the world metrics score both. One JSON row per method and
metric: the per-pair fractions of the int8 bundle (median, p10, p90 over pairs), with the fp32 mean, the int8 mean
and their difference in points. Also the programs' sizes.

    .venv/bin/python benchmarks/quantized_fidelity.py [--quant int8] [--n 6] [--pairs 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from lorarar.demo import default_bundle
from lorarar.world.evaluate import evaluate
from rows import stats

METHODS = ["content", "style", "direct", "hypernet"]
METRICS = ("content_fidelity", "style_fidelity", "both_correct")
TOLERANCE_POINTS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quant", default="int8")
    parser.add_argument("--n", type=int, default=6, help="images per pair and method")
    parser.add_argument("--pairs", type=int, default=16, help="the first N test pairs")
    args = parser.parse_args()

    bundles = {"fp32": default_bundle(quiet=True), args.quant: default_bundle(quiet=True, quant=args.quant)}
    for program in ("text_encoder", "unet", "vae_decoder"):
        sizes = {k: (b / f"{program}.pte").stat().st_size for k, b in bundles.items()}
        row = {"name": f"quantized_fidelity/size/{program}", "unit": "bytes", **sizes}
        print(json.dumps(row | {"ratio": sizes[args.quant] / sizes["fp32"]}), flush=True)
    reports = {}
    for label, bundle in bundles.items():
        with tempfile.TemporaryDirectory() as out:
            reports[label] = evaluate(
                "test", METHODS, args.n, seed=0, max_pairs=args.pairs, out_dir=Path(out), bundle=bundle
            )
    for method in METHODS:
        for metric in METRICS:
            per_pair = [r[metric] for r in reports[args.quant]["per_pair"] if r["method"] == method]
            fp32 = reports["fp32"]["summary"][method][metric]
            quant = reports[args.quant]["summary"][method][metric]
            delta = 100 * (quant - fp32)
            extra = {"fp32": fp32, args.quant: quant, "delta_points": delta, "n_images_per_pair": args.n}
            # One image moves a mean by this much: differences of a point or two are at the noise floor.
            extra["one_image_points"] = 100 / (args.n * len(per_pair))
            if metric == "both_correct" and method in ("direct", "hypernet"):  # the target is on merged pairs
                extra["within_target"] = abs(delta) <= TOLERANCE_POINTS
            print(json.dumps(stats(f"quantized_fidelity/{method}/{metric}", "fraction", per_pair, **extra)))


if __name__ == "__main__":
    main()
