"""LoRA.rar's hypernetwork at SDXL shapes: the published (dense) evaluation vs the low-rank one.

The published code feeds the network columns of dW = B A, so it materialises every merged layer's dW
(O(out * in * r)) and runs the first Linear on 2*out-long columns (O(hidden * in * out)). The low-rank form applies
(W1 B) to the columns of A instead: O(hidden * r * (in + out)) per layer. Both run here on the same random rank-64
pair on the exact shapes of SDXL's merged projections (to_q, to_out.0 of all 140 attention layers), with the
hypernetwork published with LoRA.rar when ../shared/reference has it (the timing does not depend on its values, so a
random network of the same widths stands in elsewhere). Prints one JSON object per line:
name, unit, median, p10, p90, n, and the comparison figures (speed-up, FLOPs, max |difference|).

    .venv/bin/python benchmarks/hypernet_lowrank.py [--reps N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lorarar.hypernet.model import HyperNet, HyperNetConfig
from merge_fuse import MERGED, RANK, sdxl_attention_shapes
from rows import stats, timed

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "lorarar_sdxl_hypernet.safetensors"
Factors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # scaled down_c, up_c, down_s, up_s


def load_hypernet(widths: tuple[int, ...]) -> tuple[HyperNet, str]:
    if PUBLISHED.exists():
        return HyperNet.from_published(PUBLISHED), "published LoRA.rar SDXL hypernetwork"
    torch.manual_seed(0)
    return HyperNet(HyperNetConfig(widths=widths)), "random init at SDXL widths (published weights not present)"


def pair(shapes: dict[str, tuple[int, int]]) -> dict[str, Factors]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, (n_out, n_in) in shapes.items():
        out[name] = (
            torch.randn(RANK, n_in, generator=g) * 0.02,
            torch.randn(n_out, RANK, generator=g) * 0.02,
            torch.randn(RANK, n_in, generator=g) * 0.02,
            torch.randn(n_out, RANK, generator=g) * 0.02,
        )
    return out


@torch.no_grad()
def dense(net: HyperNet, layers: dict[str, Factors]) -> dict[str, torch.Tensor]:
    """The published form: materialise dW_c, dW_s and feed their columns."""
    out = {}
    for name, (dc, uc, ds, us) in layers.items():
        columns = torch.cat([uc @ dc, us @ ds], dim=0).T  # (in, 2 out)
        out[name] = net.forward_columns(columns).T  # (2, in)
    return out


@torch.no_grad()
def lowrank(net: HyperNet, layers: dict[str, Factors]) -> dict[str, torch.Tensor]:
    return {name: net.forward_lowrank(*f) for name, f in layers.items()}


def flops(shapes: dict[str, tuple[int, int]], hidden: int) -> tuple[float, float]:
    d = l_ = 0.0
    for n_out, n_in in shapes.values():
        d += 2 * 2 * n_out * n_in * RANK + 2 * hidden * 2 * n_out * n_in + 2 * 2 * hidden * n_in
        l_ += 2 * 2 * hidden * n_out * RANK + 2 * 2 * hidden * RANK * n_in + 2 * 2 * hidden * n_in
    return d, l_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = {k: v for k, v in sdxl_attention_shapes().items() if k.endswith(MERGED)}
    net, source = load_hypernet(tuple(sorted({n_out for n_out, _ in shapes.values()})))
    layers = pair(shapes)
    want, got = dense(net, layers), lowrank(net, layers)  # also the warm-up
    diff = max(float((want[k] - got[k]).abs().max()) for k in shapes)
    scale = max(float(want[k].abs().max()) for k in shapes)
    dense_ms = timed(lambda: dense(net, layers), args.reps)
    lowrank_ms = timed(lambda: lowrank(net, layers), args.reps)
    d_flops, l_flops = flops(shapes, net.config.hidden)
    common = {"layers": len(shapes), "rank": RANK, "threads": args.threads, "hypernet": source}
    dense_row = stats("hypernet_sdxl_dense", "ms", dense_ms, gflop=d_flops / 1e9, **common)
    print(json.dumps(dense_row))
    print(
        json.dumps(
            stats(
                "hypernet_sdxl_lowrank",
                "ms",
                lowrank_ms,
                gflop=l_flops / 1e9,
                speedup_vs_dense=dense_row["median"] / stats("", "", lowrank_ms)["median"],
                flop_ratio=d_flops / l_flops,
                max_abs_diff_vs_dense=diff,
                max_abs_coefficient=scale,
                **common,
            )
        )
    )


if __name__ == "__main__":
    main()
