"""UNet export benchmark: export time, peak memory, file size and per-step latency of one denoising step
(classifier-free-guidance batch 2) for ExecuTorch+XNNPACK fp32 / int8, ONNX Runtime and eager PyTorch, at 1 and 2
threads, side by side; with the LoRA slot (max rank R, a random folded adapter fed) and without it (fused weights,
the overhead baseline), the FLOPs of a step and the fraction of this CPU's fp32 GEMM peak each run reaches.

The UNet is a published config from export/presets/ (default: SD 1.5, 860M parameters) with random weights, built
on the meta device and filled cheaply. Each export and each latency run is its own subprocess, so peak memory is
per export and thread pools start fresh. Prints one JSON object per line: name, unit, median, p10, p90, n, and the
comparison figures.

    .venv/bin/python benchmarks/export_unet.py [--preset sd15|sd21|sdxl|world|tiny] [--max-rank 32] [--reps 3]
        [--threads 1,2] [--variants et-fp32-fused,et-fp32-slot,...] [--work DIR]

``et-w8a8-slot`` (static int8 weights and activations, calibrated over the schedule) is an extra variant, not run
by default: its calibration runs the float UNet over seven timesteps first (~15 minutes at SD 1.5 here). A
``-unchunked`` suffix (``et-int8-slot-unchunked``) exports without the chunked-attention and chunked-feed-forward
forms, its baseline (rows before 2026-11-29: the exporter had no chunked-feed-forward form, and ``-unchunked``
dropped chunked-attention alone).

Each ExecuTorch program's memory under the native engine's loader (build/host/runtime/lorarar_program_memory, built
by ``make native-test``): peak RSS of loading it and running one step, against the program's size.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rows import stats, timed

VARIANTS = (
    "eager",
    "et-fp32-fused",
    "et-fp32-slot",
    "et-int8-fused",
    "et-int8-slot",
    "ort-fp32-fused",
    "ort-fp32-slot",
)


def unet_config(preset: str) -> dict[str, Any]:
    from lorarar.export import source

    if preset == "world":
        from lorarar.world import models

        return dict(models.UNET_CONFIG)
    if preset == "tiny":
        return dict(source.TINY_UNET)
    return source.load_preset(f"{preset}-unet")


UNCHUNKED = "-unchunked"


def has_slot(variant: str) -> bool:
    return variant.removesuffix(UNCHUNKED).endswith("slot")


def build(preset: str, variant: str, max_rank: int) -> Any:
    """The UNet step component of a variant (slot or fused) with random weights."""
    from lorarar.export import graph_forms, source, unet

    model = source.random_unet(unet_config(preset), seed=0)
    layout = unet.slot_layout(model, max_rank) if has_slot(variant) else None
    chunking = ("chunked-attention", "chunked-feed-forward")
    forms = tuple(f for f in graph_forms.FORMS if not (variant.endswith(UNCHUNKED) and f in chunking))
    return unet.convert(model, layout, forms=forms)


def feed(component: Any) -> tuple[torch.Tensor, ...]:
    """The example inputs, with a random full-rank adapter in the slot (every row and column non-zero)."""
    return tuple(t.contiguous() for t in component.methods[0].example)


# ---------------------------------------------------------------- subprocess: one export
def run_export(args: argparse.Namespace) -> None:
    from lorarar.export import executorch_backend, onnx_backend
    from lorarar.export.quantize import EXECUTORCH_MODES

    started = time.perf_counter()
    component = build(args.preset, args.variant, args.max_rank)
    built = time.perf_counter() - started
    out = Path(args.out)
    if args.variant.startswith("et-"):
        mode = args.variant.split("-")[1]  # et-<fp32|int8|w8a8>-<fused|slot>
        quant = mode if mode in EXECUTORCH_MODES else "none"
        facts = executorch_backend.lower(component, out, "xnnpack", quant)
        files = [out]
    else:
        facts = onnx_backend.export(component, out.parent)
        files = list(out.parent.glob("unet.onnx*"))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "build_seconds": built,
                "peak_rss_mb": peak,
                "bytes": sum(f.stat().st_size for f in files),
                "delegation": facts.get("delegation"),
            }
        )
    )


# ---------------------------------------------------------------- subprocess: one latency run
def run_latency(args: argparse.Namespace) -> None:
    threads = args.threads
    torch.set_num_threads(threads)
    component = build(args.preset, "eager" if args.variant == "eager" else args.variant, args.max_rank)
    inputs = feed(component)
    load_ms = 0.0
    if args.variant == "eager":
        from diffusers import UNet2DConditionModel

        # diffusers as shipped: default (SDPA) attention, no slot.
        with torch.device("meta"):
            model = UNet2DConditionModel(**unet_config(args.preset))
        model.load_state_dict(component.methods[0].module.unet.state_dict(), assign=True)
        model.eval()

        def step() -> object:
            with torch.no_grad():
                return model(*inputs[:3]).sample
    elif args.variant.startswith("et-"):
        from lorarar.export import executorch_backend

        executorch_backend.set_threads(threads)
        start = time.perf_counter()
        runner = executorch_backend.Runner(Path(args.out))
        load_ms = (time.perf_counter() - start) * 1e3

        def step() -> object:
            return runner(*inputs)
    else:
        from lorarar.export import onnx_backend

        start = time.perf_counter()
        ort_runner = onnx_backend.Runner(Path(args.out).parent / "unet.onnx", threads)
        load_ms = (time.perf_counter() - start) * 1e3

        def step() -> object:
            return ort_runner(*inputs)

    del component
    step()  # warm-up
    samples = timed(step, args.reps)
    print(json.dumps({"samples": samples, "load_ms": load_ms}))


# ---------------------------------------------------------------- the parent
def step_flops(preset: str, max_rank: int) -> tuple[float, float]:
    """FLOPs of one step (matmuls and convolutions, 2 per MAC) without and with the slot, on the meta device."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from lorarar.export import unet

    out = []
    for slot in (False, True):
        with torch.device("meta"):
            model = UNet2DConditionModel(**unet_config(preset)).eval()
            layout = unet.slot_layout(model, max_rank) if slot else None
            component = unet.convert(model, layout)
            specs = component.methods[0].inputs
            inputs = [torch.zeros(s.shape, dtype=s.torch_dtype) for s in specs]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            component.methods[0].module(*inputs)
        out.append(float(counter.get_total_flops()))
    return out[0], out[1]


def gemm_gflops(threads: int) -> float:
    """This CPU's practical float32 peak: torch (MKL/oneDNN) on a 2048^3 matmul."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = min(timed(lambda: a @ b, 5))
    return 2 * 2048**3 / (best / 1e3) / 1e9


def child(mode: str, args: argparse.Namespace, variant: str, out: Path, threads: int = 1) -> dict[str, Any]:
    """Runs one export / latency measurement in a fresh process. With --work, results are kept beside the files
    (``<variant>/<mode>-<threads>t.json``) and reused by a rerun, so a long run can be resumed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = out.parent / f"{mode}-{threads}t-r{args.reps}.json"
    source = exporter_digest()
    if args.work is not None and cache.exists():
        cached: dict[str, Any] = json.loads(cache.read_text())
        if cached.get("exporter_source") == source:
            return cached
        print(f"{cache}: from another exporter version, measuring again", file=sys.stderr)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--preset",
        args.preset,
        "--variant",
        variant,
        "--max-rank",
        str(args.max_rank),
        "--out",
        str(out),
        "--reps",
        str(args.reps),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.work is not None:
        cache.write_text(json.dumps(result | {"exporter_source": source}))
    return result


@functools.cache
def exporter_digest() -> str:
    """The exporter's source and this benchmark's: a --work result from another version of either is stale (an
    export after a graph-form change must not be reported under the old numbers)."""
    from lorarar import demo

    here = Path(__file__).resolve()
    return hashlib.sha256((demo.exporter_digest() + demo.source_digest(here.parent, here.name)).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--preset", default="sd15")
    parser.add_argument("--max-rank", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", type=Path, help="where the exported files go (default: a temporary folder)")
    parser.add_argument("--child", choices=("export", "latency"), help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "export":
        return run_export(args)
    if args.child == "latency":
        args.threads = int(args.threads)
        return run_latency(args)

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    variants = [v for v in args.variants.split(",") if v]
    threads = [int(t) for t in args.threads.split(",")]
    flops, flops_slot = step_flops(args.preset, args.max_rank)
    emit(
        stats(
            f"unet_step_flops/{args.preset}",
            "GFLOP",
            [flops / 1e9],
            with_slot=flops_slot / 1e9,
            slot_fraction=(flops_slot - flops) / flops,
            max_rank=args.max_rank,
        )
    )
    peaks = {t: gemm_gflops(t) for t in threads}
    for t, p in peaks.items():
        emit(stats(f"cpu_fp32_gemm_peak/{t}t", "GFLOP/s", [p], note="torch 2048^3 matmul"))
    work_ctx = tempfile.TemporaryDirectory(prefix="lorarar-bench-") if args.work is None else None
    work = Path(work_ctx.name) if work_ctx else args.work
    work.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for v in variants:
        if v == "eager":
            continue
        folder = work / v
        folder.mkdir(exist_ok=True)
        out = folder / ("unet.pte" if v.startswith("et-") else "unet.onnx")
        r = child("export", args, v, out)
        if not out.exists():
            raise SystemExit(f"{out}: missing after export")
        files[v] = out
        emit(
            stats(
                f"export/{args.preset}/{v}",
                "s",
                [r["seconds"]],
                peak_rss_mb=round(r["peak_rss_mb"]),
                file_mb=round(r["bytes"] / 2**20, 1),
                build_s=round(r["build_seconds"], 1),
                delegation=r["delegation"],
            )
        )
    medians: dict[tuple[str, int], float] = {}
    for t in threads:
        for v in variants:
            r = child("latency", args, v, files.get(v, work / v / "none"), t)
            medians[(v, t)] = statistics.median(r["samples"])
            row = stats(f"unet_step/{args.preset}/{v}/{t}t", "ms", r["samples"], threads=t, load_ms=round(r["load_ms"]))
            f = flops_slot if has_slot(v) else flops
            row["gflop_per_s"] = f / (row["median"] / 1e3) / 1e9
            row["fraction_of_peak"] = row["gflop_per_s"] / peaks[t]
            if v.endswith("slot") and (v.replace("slot", "fused"), t) in medians:
                row["overhead_vs_fused"] = row["median"] / medians[(v.replace("slot", "fused"), t)] - 1
            if "-w8a8-" in v and (v.replace("w8a8", "int8"), t) in medians:
                row["speedup_vs_int8"] = medians[(v.replace("w8a8", "int8"), t)] / row["median"]
            if ("eager", t) in medians and v != "eager":
                row["speedup_vs_eager"] = medians[("eager", t)] / row["median"]
            if v.endswith(UNCHUNKED) and (v.removesuffix(UNCHUNKED), t) in medians:
                row["chunked_speedup"] = row["median"] / medians[(v.removesuffix(UNCHUNKED), t)]
            emit(row)
    for v, path in files.items():
        if v.startswith("et-"):
            for row in program_memory(args, v, path):
                emit(row)
    if work_ctx:
        work_ctx.cleanup()


PROGRAM_MEMORY = Path(__file__).resolve().parents[1] / "build" / "host" / "runtime" / "lorarar_program_memory"


def program_memory(args: argparse.Namespace, variant: str, pte: Path) -> list[dict[str, Any]]:
    """Peak RSS of the native loader loading ``pte`` and running one step, against the program's size: packing
    on the heap, and mapping a packed weight cache written by the load before (the engine's packed_cache_dir)."""
    if not PROGRAM_MEMORY.exists():
        print(f"# {PROGRAM_MEMORY} not built (make native-test): no program memory rows", file=sys.stderr)
        return []
    cache = pte.parent / "memory.json"
    source = exporter_digest()
    saved = json.loads(cache.read_text()) if args.work is not None and cache.exists() else {}
    if saved.get("exporter_source") == source:
        reports = saved["reports"]
    else:
        packed = pte.parent / "unet.xnnpack"
        packed.unlink(missing_ok=True)
        reports = {}
        cached = ["--packed-cache", str(packed)]
        for label, extra in (("heap", []), ("writes_cache", cached), ("packed_cache", cached)):
            run = subprocess.run([str(PROGRAM_MEMORY), str(pte), *extra], check=True, capture_output=True, text=True)
            reports[label] = json.loads(run.stdout.strip().splitlines()[-1])
        packed.unlink()
        if args.work is not None:
            cache.write_text(json.dumps({"reports": reports, "exporter_source": source}))
    rows = []
    for label in ("heap", "packed_cache"):
        report = reports[label]
        program_mb = report["program_kb"] / 1024
        peak_mb = report["peak_rss_kb"] / 1024
        loaded = report["rss_kb"]["method_loaded"]
        after = report["rss_kb"]["after_run"]
        row = stats(
            f"program_memory/{args.preset}/{variant}" + ("/packed_cache" if label == "packed_cache" else ""),
            "MB",
            [peak_mb],
            program_mb=round(program_mb, 1),
            ratio_to_program=round(peak_mb / program_mb, 2),
            planned_mb=round(report["planned_kb"] / 1024, 1),
            load_ms=round(report["load_ms"]),
            step_ms=round(report["run_ms"][0]),
            loaded_anon_mb=round(loaded["anon"] / 1024, 1),
            after_step_anon_mb=round(after["anon"] / 1024, 1),
            step_workspace_mb=round((after["anon"] - loaded["anon"]) / 1024, 1),
            file_mb=round(after["file"] / 1024, 1),  # code, plus the mapped packed weights with the cache
        )
        if label == "packed_cache":
            row["same_output"] = report["checksum"] == reports["heap"]["checksum"]
            row["first_load_ms"] = round(reports["writes_cache"]["load_ms"])
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
