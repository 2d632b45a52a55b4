"""How much can column-wise coefficients gain over the sum on the default world, and what do the objectives reward?

Two measurements behind issue 4's analysis (README, "LoRA.rar"):

1. ``merge_headroom/loss/<objective>/<candidate>``: the ZipLoRA objective and the ground-truth objective
   (lorarar.hypernet.train, lambda 0) on train and val pairs for four merges: the sum (every coefficient 1), the
   content LoRA dropped (m_c = 0), the style LoRA dropped (m_s = 0) and the committed hypernetwork. Median, p10, p90
   over pairs, and the ratio of the means to the sum's.
2. ``merge_headroom/both_correct/<variant>``: an oracle. For test pairs, coefficients are fitted to the world's
   ground-truth renders of that very pair under the merged prompt (100 Adam steps from 1, lr 0.01, 8 images a
   step: ZipLoRA's optimiser on the ground-truth objective), for to_q/to_out.0 (the published hypernetwork's
   layers) and for all four projections; N images per pair are generated with the PyTorch reference pipeline and
   scored by the world's classifiers, against the direct merge of the same pairs and seeds. Per-pair both-correct
   fractions (median, p10, p90) and the means.
3. ``merge_headroom/both_correct/static-all4``: what of the oracle transfers to unseen pairs without looking at
   them. The oracle (all four projections) is fitted to S train pairs and its coefficients averaged over them, one
   number per layer and input feature (a column of dW multiplies the same base-model feature in every LoRA); that
   one fixed merge is applied to every test pair, in the same run and seeds as the rows above.

    .venv/bin/python benchmarks/merge_headroom.py [--loss-pairs 8] [--pairs 6] [--n 8] [--static-pairs 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from lorarar import LoraFile
from lorarar._native import Adapter
from lorarar.hypernet import slots
from lorarar.hypernet.model import HyperNet
from lorarar.hypernet.train import PairWorld, fit_coefficients, hypernet_coefficients
from lorarar.world import catalog
from lorarar.world.metrics import Scorer
from lorarar.world.sample import generate, load_pipeline, prompt_for
from rows import stats

OBJECTIVES = ("ziplora", "ground-truth")
LAYERS = {"oracle-q-out": ("to_q", "to_out.0"), "oracle-all4": ("to_q", "to_k", "to_v", "to_out.0")}


def spread(pairs: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """`count` distinct pairs that vary content and style together (diagonals of the content x style grid)."""
    contents = list(dict.fromkeys(c for c, _ in pairs))
    styles = list(dict.fromkeys(s for _, s in pairs))
    count = min(count, len(pairs))
    return [(contents[i % len(contents)], styles[(i + i // len(contents)) % len(styles)]) for i in range(count)]


def candidates(world: PairWorld, hypernet: HyperNet, content: str, style: str) -> dict[str, slots.Coefficients]:
    fc, fs = world.factors[content], world.factors[style]
    both = [m for m in world.targets if m in fc and m in fs]

    def fixed(mc: float, ms: float) -> slots.Coefficients:
        return {
            m: (torch.full((fc[m].down.shape[1],), float(mc)), torch.full((fs[m].down.shape[1],), float(ms)))
            for m in both
        }

    with torch.no_grad():
        net = hypernet_coefficients(hypernet, fc, fs, world.merged_modules(hypernet.config))
    return {"sum": fixed(1, 1), "content-dropped": fixed(0, 1), "style-dropped": fixed(1, 0), "hypernet": net}


def loss_rows(world: PairWorld, hypernet: HyperNet, pairs: list[tuple[str, str]]) -> None:
    values: dict[tuple[str, str], list[float]] = {}
    for content, style in pairs:
        for label, coeffs in candidates(world, hypernet, content, style).items():
            for objective in OBJECTIVES:
                draws = []
                for i in range(3):  # three draws of images, noise and timesteps, the same for every candidate
                    with torch.no_grad():
                        g = torch.Generator().manual_seed(100 + i)
                        draws.append(float(world.loss(objective, content, style, coeffs, 8, g, 0.0)))
                values.setdefault((objective, label), []).append(float(np.mean(draws)))
    for (objective, label), samples in values.items():
        base = float(np.mean(values[(objective, "sum")]))
        row = stats(f"merge_headroom/loss/{objective}/{label}", "loss", samples, mean=float(np.mean(samples)))
        print(json.dumps(row | {"sum_mean": base, "ratio_to_sum": float(np.mean(samples)) / base}), flush=True)


def static_coefficients(world: PairWorld, pairs: list[tuple[str, str]]) -> slots.Coefficients:
    """The all-four-projections oracle of each pair, averaged over the pairs (per layer and input feature)."""
    fits = [fit_coefficients(world, c, s, "ground-truth", LAYERS["oracle-all4"], lam=0.0, batch=4) for c, s in pairs]
    return {
        k: (torch.stack([f[k][0] for f in fits]).mean(0), torch.stack([f[k][1] for f in fits]).mean(0)) for k in fits[0]
    }


def as_arrays(coefficients: slots.Coefficients) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Coefficients in the form Adapter.merge takes (float32 arrays)."""
    return {k: (c.numpy().astype(np.float32), s.numpy().astype(np.float32)) for k, (c, s) in coefficients.items()}


def oracle_rows(
    world: PairWorld, pairs: list[tuple[str, str]], n: int, seed: int, static: slots.Coefficients | None = None
) -> None:
    pipe, scorer, paths = load_pipeline(), Scorer(), catalog.paths()
    static_arrays = as_arrays(static) if static is not None else None
    scores: dict[str, list[float]] = {}
    for content, style in pairs:
        files = LoraFile.load(str(paths.content_lora(content))), LoraFile.load(str(paths.style_lora(style)))
        adapters = {"direct": Adapter.merge(*files, "direct", 1.0, 1.0)}
        for label, layers in LAYERS.items():
            fitted = fit_coefficients(world, content, style, "ground-truth", layers, lam=0.0, batch=4)
            adapters[label] = Adapter.merge(*files, "columns", 1.0, 1.0, as_arrays(fitted))
        if static_arrays is not None:
            adapters["static-all4"] = Adapter.merge(*files, "columns", 1.0, 1.0, static_arrays)
        for label, adapter in adapters.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "merged.safetensors"
                adapter.save(str(path))
                images = generate(pipe, prompt_for(content, style), path, n, seed)
            scores.setdefault(label, []).append(scorer.score(images, content, style)["both_correct"])
    direct = float(np.mean(scores["direct"]))
    for label, samples in scores.items():
        row = stats(f"merge_headroom/both_correct/{label}", "fraction", samples, mean=float(np.mean(samples)))
        print(json.dumps(row | {"direct_mean": direct, "pairs": [f"{c}+{s}" for c, s in pairs]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loss-pairs", type=int, default=8, help="train and val pairs each for the loss rows")
    parser.add_argument("--pairs", type=int, default=6, help="test pairs for the oracle rows (0: skip them)")
    parser.add_argument("--n", type=int, default=8, help="images per pair and merge")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--static-pairs", type=int, default=16, help="train pairs whose oracles are averaged (0: skip that row)"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    world = PairWorld()
    hypernet = HyperNet.load(catalog.paths().hypernet)
    loss_pairs = spread(catalog.pairs("train"), args.loss_pairs) + spread(catalog.pairs("val"), args.loss_pairs)
    loss_rows(world, hypernet, loss_pairs)
    if args.pairs:
        train = spread(catalog.pairs("train"), args.static_pairs)
        static = static_coefficients(world, train) if args.static_pairs else None
        oracle_rows(world, spread(catalog.pairs("test"), args.pairs), args.n, args.seed, static)


if __name__ == "__main__":
    main()
