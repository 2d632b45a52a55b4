"""LoRA core benchmark at SDXL scale: parse, fold, fuse; native vs the PyTorch reference vs diffusers' fuse path.

A random content/style pair of rank 64 on the exact shapes of SDXL's 560 attention projections (from the SDXL
UNet config), written as fp16 safetensors like real SDXL LoRAs. Prints one JSON object per line:
name, unit, median, p10, p90, n, and the comparison figures.

Fusing a rank-128 adapter costs 2 * 128 FLOP per weight element, so it is compute-bound: the rows carry both the
memory floor (bytes of W read and written / measured memcpy bandwidth) and the compute floor (FLOPs / this CPU's
measured float32 GEMM peak).

    .venv/bin/python benchmarks/merge_fuse.py [--quick] [--reps N]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from lorarar import Adapter, LoraFile, ThreadPool
from lorarar.merge import reference
from rows import stats, timed

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json, the fields that shape the attention projections.
SDXL_UNET = dict(
    sample_size=128,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20),
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
RANK = 64
MERGED = ("to_q", "to_out.0")  # the layers LoRA.rar's hypernetwork merges column-wise


def sdxl_attention_shapes() -> dict[str, tuple[int, int]]:
    """module -> (out, in) for every attention projection, from the real config on the meta device."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET)  # type: ignore[arg-type]
    return {
        name: (m.out_features, m.in_features)
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and name.endswith(("to_q", "to_k", "to_v", "to_out.0"))
    }


def write_lora(path: Path, shapes: dict[str, tuple[int, int]], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (n_out, n_in) in shapes.items():
        tensors[f"unet.{name}.lora_A.weight"] = (torch.randn(RANK, n_in, generator=g) * 0.02).half()
        tensors[f"unet.{name}.lora_B.weight"] = (torch.randn(n_out, RANK, generator=g) * 0.02).half()
    save_file(tensors, str(path))


def memcpy_gbps() -> float:
    """Bytes read + written per second copying 512 MiB (the machine's practical bandwidth)."""
    src = np.ones(128 << 20, dtype=np.float32)
    dst = np.empty_like(src)
    best = min(timed(lambda: np.copyto(dst, src), 5))
    return 2 * src.nbytes / (best / 1e3) / 1e9


def gemm_gflops(threads: int) -> float:
    """This CPU's practical float32 peak: torch (MKL/oneDNN) on a 2048^3 matmul."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = min(timed(lambda: a @ b, 5))
    return 2 * 2048**3 / (best / 1e3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1/8 of the layers, 2 repetitions (smoke test)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    shapes = sdxl_attention_shapes()
    if args.quick:
        shapes = dict(list(shapes.items())[::8])
        args.reps = 2
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        c_path, s_path = Path(tmp) / "content.safetensors", Path(tmp) / "style.safetensors"
        write_lora(c_path, shapes, 1)
        write_lora(s_path, shapes, 2)
        file_mb = (c_path.stat().st_size + s_path.stat().st_size) / 1e6
        meta = {"layers": len(shapes), "rank": RANK, "files_mb": round(file_mb, 1)}

        # (1) parse both files (page cache warm), with the NaN/Inf scan and without.
        for check in (True, False):
            t = timed(
                lambda c=check: (
                    LoraFile.load(str(c_path), check_values=c),
                    LoraFile.load(str(s_path), check_values=c),
                ),
                args.reps,
            )
            emit(stats(f"parse_pair{'' if check else '_nocheck'}", "ms", t, **meta))
        content, style = LoraFile.load(str(c_path)), LoraFile.load(str(s_path))

        # (2) fold column coefficients into the rank-128 adapter; then materialising A' everywhere.
        rng = np.random.default_rng(0)
        coeffs = {
            name: (rng.random(n_in, dtype=np.float32), rng.random(n_in, dtype=np.float32))
            for name, (_, n_in) in shapes.items()
            if name.endswith(MERGED)
        }
        t_fold = timed(lambda: Adapter.merge(content, style, "columns", 1.0, 1.0, coeffs), max(args.reps, 20))
        adapter = Adapter.merge(content, style, "columns", 1.0, 1.0, coeffs)
        emit(stats("fold_columns", "ms", t_fold, **meta, merged_layers=len(coeffs)))
        a_bytes = sum(2 * RANK * n_in * 4 for _, n_in in shapes.values())
        t_mat = timed(lambda: [adapter.materialize(name) for name in shapes], args.reps)
        bw = memcpy_gbps()
        emit(
            stats(
                "materialize_all_fp32",
                "ms",
                t_mat,
                **meta,
                output_mb=round(a_bytes / 1e6, 1),
                write_floor_ms=round(a_bytes / (bw * 1e9) * 1e3, 2),
                memcpy_gbps=round(bw, 2),
            )
        )

        # (3) fuse into fp32 and fp16 base weights.
        gen = torch.Generator().manual_seed(3)
        folded = reference.fold(
            reference.read_factors(content),
            reference.read_factors(style),
            coefficients={k: (torch.from_numpy(c), torch.from_numpy(s)) for k, (c, s) in coeffs.items()},
        )
        for dtype in (torch.float32, torch.float16):
            weights = {
                name: torch.empty(shape, dtype=dtype).uniform_(-0.05, 0.05, generator=gen)
                for name, shape in shapes.items()
            }
            w_bytes = sum(w.numel() * w.element_size() for w in weights.values())
            floor = 2 * w_bytes / (bw * 1e9) * 1e3
            tag = "fp32" if dtype == torch.float32 else "fp16"
            flops = sum(2 * 2 * RANK * w.numel() for w in weights.values())
            for threads in (1, 2):
                peak = gemm_gflops(threads)
                compute_floor = flops / (peak * 1e9) * 1e3
                pool = ThreadPool(threads)
                arrays = {name: w.numpy() for name, w in weights.items()}
                t_native = timed(
                    lambda p=pool, arrs=arrays: [adapter.fuse_into(n, a, 1.0, p) for n, a in arrs.items()], args.reps
                )
                torch.set_num_threads(threads)
                t_torch = timed(
                    lambda ws=weights: [w.copy_(reference_fuse_fp32acc(w, *folded[n])) for n, w in ws.items()],
                    args.reps,
                )
                t_peft = diffusers_fuse_times(weights, folded, args.reps)
                med = statistics.median(t_native)
                extra = dict(
                    meta,
                    threads=threads,
                    weights_mb=round(w_bytes / 1e6, 1),
                    bandwidth_floor_ms=round(floor, 1),
                    memcpy_gbps=round(bw, 2),
                    gflops=round(flops / (med / 1e3) / 1e9, 1),
                    gemm_peak_gflops=round(peak, 1),
                    compute_floor_ms=round(compute_floor, 1),
                    x_compute_floor=round(med / compute_floor, 2),
                )
                emit(
                    stats(
                        f"fuse_{tag}_native",
                        "ms",
                        t_native,
                        **extra,
                        x_floor=round(med / floor, 2),
                        speedup_vs_torch=round(statistics.median(t_torch) / med, 2),
                        speedup_vs_diffusers=round(statistics.median(t_peft) / med, 2),
                    )
                )
                emit(stats(f"fuse_{tag}_torch", "ms", t_torch, threads=threads))
                emit(stats(f"fuse_{tag}_diffusers_peft", "ms", t_peft, threads=threads))
            del weights
            gc.collect()


def reference_fuse_fp32acc(w: torch.Tensor, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The straightforward torch path: W + B'A' with one matmul in float32."""
    return (w.float() + up @ down).to(w.dtype)


def diffusers_fuse_times(
    weights: dict[str, torch.Tensor], folded: dict[str, tuple[torch.Tensor, torch.Tensor]], reps: int
) -> list[float]:
    """diffusers' fuse_lora on these layers: peft LoRA Linear layers (content + style adapters) merged in place."""
    from peft import LoraConfig
    from peft.tuners.lora import Linear as LoraLinear

    layers = []
    for name, w in weights.items():
        base = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
        base.weight = torch.nn.Parameter(w, requires_grad=False)  # shares storage: merging writes into w
        down, up = folded[name]
        half = down.shape[0] // 2  # content rank; the style part follows
        config = LoraConfig(r=half, lora_alpha=half, init_lora_weights=False)
        layer = LoraLinear(base, "c", config=config, r=half, lora_alpha=half)
        layer.update_layer("s", r=down.shape[0] - half, lora_alpha=down.shape[0] - half, config=config)
        with torch.no_grad():
            layer.lora_A["c"].weight.copy_(down[:half])
            layer.lora_B["c"].weight.copy_(up[:, :half])
            layer.lora_A["s"].weight.copy_(down[half:])
            layer.lora_B["s"].weight.copy_(up[:, half:])
        layers.append(layer)

    def run() -> None:
        with torch.no_grad():
            for layer in layers:
                layer.merge(adapter_names=["c", "s"])
                layer.merged_adapters.clear()  # merge again next repetition (the weight keeps growing; timing only)

    return timed(run, reps)


if __name__ == "__main__":
    main()
