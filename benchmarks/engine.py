"""Engine benchmark: what a phone user waits for when they pick a new content+style pair, native vs PyTorch.

On a bundle (default: the default world's XNNPACK bundle, exported on first use) and a content/style pair:
- pair switch: ``Context.set_loras`` (parse-free: both files are mapped once; hypernetwork coefficients + fold into
  the UNet's LoRA slot) for the hypernet and direct merges, against diffusers applying the same merged LoRA to its
  pipeline (``load_lora_weights`` + ``fuse_lora``, then ``unfuse_lora`` + ``unload_lora_weights`` to switch back);
- the hypernet pair switch against what LoRA.rar replaces: ZipLoRA's per-pair optimisation of the same pair (100
  Adam steps, lr 0.01, lambda 0.01, as published; PyTorch on the world's model, library LoRAs only);
- merge-to-first-step: pair switch plus one denoising step (the latency before the first progress update);
- denoising step (classifier-free guidance batch 2) and whole image, native vs diffusers on the same model;
- peak RSS of a process that loads the engine and generates, against one that loads the diffusers pipeline;
- the C engine alone (runtime/examples/lorarar_generate, no interpreter): peak RSS against the bundle's size, and
  what a second context costs (packed weights are shared; activations per context or one shared workspace);
- endurance: RSS growth over many switch-pair + generate cycles (a leak shows as growth).
Each row: name, unit, median, p10, p90, n, and the comparison figures (``vs`` = the alternative's median,
``speedup`` = alternative / native). Absolute times on a shared machine are noisy; compare ratios.

    .venv/bin/python benchmarks/engine.py [--bundle DIR] [--content NAME|FILE] [--style NAME|FILE] [--reps N]
        [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rows import stats, timed


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_peak_rss(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter running `code` (so the two pipelines do not share a heap). VmHWM, not
    ru_maxrss: Linux carries the parent's ru_maxrss across fork + exec, VmHWM starts with the new image."""
    probe = "[print(int(l.split()[1])) for l in open('/proc/self/status') if l.startswith('VmHWM:')]"
    out = subprocess.run(
        [sys.executable, "-c", code + "\n" + probe],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def resolve(value: str, kind: str) -> Path:
    from lorarar.world import catalog

    path = Path(value)
    if path.exists():
        return path
    paths = catalog.paths()
    return paths.content_lora(value) if kind == "content" else paths.style_lora(value)


def main() -> int:
    from lorarar import LoraFile
    from lorarar._native import Context, Engine
    from lorarar.pipeline import bundle_source, load_reference, merged_lora

    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--content", default="truck")
    parser.add_argument("--style", default="denim")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--swaps", type=int, default=1000, help="switch+generate cycles of the endurance run")
    parser.add_argument("--ziplora-reps", type=int, default=3, help="ZipLoRA runs (~30 s each here); 0 skips them")
    parser.add_argument("--quick", action="store_true", help="3 reps, 5 steps, 100 swaps, 1 ZipLoRA run")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.steps, args.swaps, args.ziplora_reps = 3, 5, 100, min(args.ziplora_reps, 1)
    if args.bundle is None:
        from lorarar.demo import default_bundle

        args.bundle = default_bundle(quiet=True)
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    content_path, style_path = resolve(args.content, "content"), resolve(args.style, "style")

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    engine = Engine.load(str(args.bundle), n_threads=args.threads)
    content, style = LoraFile.load(str(content_path)), LoraFile.load(str(style_path))
    ctx = Context.create(engine)
    prompt = "a sks bird in zwz style"
    methods = ["direct"] + (["hypernet"] if engine.has_hypernet else [])

    # ---- diffusers: the same merged LoRA applied to the pipeline it was exported from.
    model, hypernet = bundle_source(args.bundle)
    pipe = load_reference(model, "ddim")
    switch_ms: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            if method == "hypernet" and hypernet is None:
                continue
            lora = merged_lora(content_path, style_path, method, hypernet, Path(tmp))

            def diffusers_switch(lora: Path = lora) -> None:
                pipe.load_lora_weights(str(lora), adapter_name="bench")
                pipe.fuse_lora(lora_scale=1.0, adapter_names=["bench"])
                pipe.unfuse_lora()
                pipe.unload_lora_weights()

            theirs = timed(diffusers_switch, args.reps)

            def native_switch(m: str = method) -> None:
                ctx.set_loras(content, style, method=m)

            ours = switch_ms[method] = timed(native_switch, args.reps * 5)
            emit(
                stats(
                    f"pair_switch_{method}",
                    "ms",
                    ours,
                    vs="diffusers load_lora_weights+fuse_lora+unfuse+unload of the merged LoRA",
                    vs_median=round(statistics.median(theirs), 3),
                    speedup=round(statistics.median(theirs) / statistics.median(ours), 1),
                )
            )

    if "hypernet" in switch_ms and args.ziplora_reps > 0:
        row = ziplora_row(args.content, args.style, switch_ms["hypernet"], args.ziplora_reps)
        if row:
            emit(row)

    # ---- merge to first step, per step, whole image.
    for method in methods:

        def switch_and_step(m: str = method) -> None:
            ctx.set_loras(content, style, method=m)
            ctx.generate(prompt, steps=1, seed=0)

        emit(stats(f"merge_to_first_step_{method}", "ms", timed(switch_and_step, args.reps), includes="decode"))
    ctx.set_loras(content, style, method="direct")
    step_ms: list[float] = []  # each image's median step
    image_ms: list[float] = []
    for seed in range(args.reps):
        _, timings, _ = ctx.generate(prompt, steps=args.steps, seed=seed)
        step_ms.append(timings["step_ms_median"])
        image_ms.append(timings["total_ms"])

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor

    def torch_image() -> None:
        with torch.no_grad():
            pipe(prompt, num_inference_steps=args.steps, guidance_scale=5.0, output_type="np", height=size, width=size)

    theirs_image = timed(torch_image, max(2, args.reps // 2))
    emit(
        stats(
            "denoise_step",
            "ms",
            step_ms,
            batch=2,
            vs="diffusers StableDiffusionPipeline per step (image time / steps)",
            vs_median=round(statistics.median(theirs_image) / args.steps, 3),
            speedup=round(statistics.median(theirs_image) / args.steps / statistics.median(step_ms), 2),
        )
    )
    emit(
        stats(
            "image",
            "ms",
            image_ms,
            steps=args.steps,
            vs="diffusers StableDiffusionPipeline",
            vs_median=round(statistics.median(theirs_image), 1),
            speedup=round(statistics.median(theirs_image) / statistics.median(image_ms), 2),
        )
    )

    # ---- endurance: switch the pair and generate (1 step), many cycles; RSS after warm-up vs at the end.
    def cycle(i: int) -> None:
        if i % 2:
            ctx.set_loras(content, style, method=methods[-1])
        else:
            ctx.set_loras(style, content, method="direct")
        ctx.generate(prompt, steps=1, seed=i)

    for i in range(10):
        cycle(i)
    before = current_rss_mb()
    cycle_ms = []
    for i in range(args.swaps):
        t = time.perf_counter()
        cycle(i)
        cycle_ms.append((time.perf_counter() - t) * 1e3)
    after = current_rss_mb()
    emit(
        stats(
            "switch_generate_cycles",
            "ms",
            cycle_ms,
            rss_before_mb=round(before, 1),
            rss_after_mb=round(after, 1),
            rss_growth_mb=round(after - before, 2),
        )
    )

    # ---- peak memory of each pipeline in its own process.
    ours_rss = child_peak_rss(
        "from lorarar._native import Engine, Context; from lorarar import LoraFile\n"
        f"e = Engine.load({str(args.bundle)!r}); c = Context.create(e)\n"
        f"c.set_loras(LoraFile.load({str(content_path)!r}), LoraFile.load({str(style_path)!r}), method='direct')\n"
        f"c.generate('a bird', steps=2, seed=0)"
    )
    theirs_rss = child_peak_rss(
        "import torch; from diffusers import StableDiffusionPipeline\n"
        f"p = StableDiffusionPipeline.from_pretrained({str(model)!r}, torch_dtype=torch.float32)\n"
        "p.set_progress_bar_config(disable=True)\n"
        f"p('a bird', num_inference_steps=2, output_type='np', height={size}, width={size})"
    )
    emit(
        stats(
            "peak_rss",
            "MB",
            [ours_rss],
            vs="diffusers pipeline process",
            vs_median=round(theirs_rss, 1),
            ratio=round(theirs_rss / ours_rss, 2),
        )
    )
    for row in c_engine_memory(args.bundle, content_path, style_path, args.threads):
        emit(row)
    return 0


def ziplora_row(content: str, style: str, hypernet_ms: list[float], reps: int) -> dict[str, Any] | None:
    """The native hypernet merge of a pair against ZipLoRA's optimisation of the same pair. ZipLoRA needs the LoRAs'
    training images, so it runs for the default world's library names only."""
    from lorarar.hypernet.train import PairWorld, ziplora_coefficients
    from lorarar.world import catalog

    if content not in catalog.library_subjects() or style not in catalog.library_styles():
        print(f"# {content} + {style}: not a library pair, no ZipLoRA row", file=sys.stderr)
        return None
    world = PairWorld(names=[content, style])
    theirs = timed(lambda: ziplora_coefficients(world, content, style), reps)
    return stats(
        "merge_hypernet_vs_ziplora",
        "ms",
        hypernet_ms,
        includes="hypernetwork program + fold into the UNet's slot (the pair switch)",
        vs="ZipLoRA per-pair optimisation, 100 steps (PyTorch, the world's model)",
        vs_median=round(statistics.median(theirs), 1),
        vs_n=reps,
        speedup=round(statistics.median(theirs) / statistics.median(hypernet_ms)),
    )


C_EXAMPLE = Path(__file__).resolve().parents[1] / "build" / "host" / "runtime" / "lorarar_generate"


def c_engine_memory(bundle: Path, content: Path, style: Path, threads: int) -> list[dict[str, Any]]:
    """Peak RSS of the plain-C example (one context, 2 steps; the peak includes the load-time transient of packing),
    its RSS after the first image (steady state), and the anonymous memory a second context adds, for both workspace
    modes, against the size of the bundle's programs; and with the packed weight cache (packed_cache_dir), on the
    load after the one that wrote it: no packing transient, the weights clean file pages instead of heap."""
    if not C_EXAMPLE.exists():
        print(f"# {C_EXAMPLE} not built (make native-test): no C engine memory rows", file=sys.stderr)
        return []
    bundle_mb = sum(f.stat().st_size for f in bundle.glob("*.pte")) / 2**20
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "packed"
        cache.mkdir()
        for parallel, packed in ((False, False), (True, False), (False, True)):
            files = [str(bundle), str(content), str(style), str(Path(tmp) / "x.ppm")]
            options = ["--steps", "2", "--threads", str(threads), "--contexts", "2", "--parallel", str(int(parallel))]
            if packed:
                options += ["--packed-cache", str(cache)]
                subprocess.run([str(C_EXAMPLE), *files, *options], check=True, capture_output=True)  # writes it
            run = subprocess.run(
                [str(C_EXAMPLE), *files, *options],
                check=True,
                capture_output=True,
                text=True,
            )
            report = json.loads(run.stdout.strip().splitlines()[-1])
            rss = report["rss_kb"]
            peak_mb = report["peak_rss_first_kb"] / 1024
            first = rss["first_image"]
            steady_mb = (first["anon"] + first["file"]) / 1024
            second_mb = (rss["more_contexts"]["anon"] - first["anon"]) / 1024
            rows.append(
                stats(
                    "c_engine_peak_rss"
                    + ("_parallel_contexts" if parallel else "")
                    + ("_packed_cache" if packed else ""),
                    "MB",
                    [peak_mb],
                    bundle_programs_mb=round(bundle_mb, 2),
                    ratio_to_bundle=round(peak_mb / bundle_mb, 2),
                    steady_mb=round(steady_mb, 1),
                    steady_ratio_to_bundle=round(steady_mb / bundle_mb, 2),
                    file_mb=round(first["file"] / 1024, 1),  # code, plus the packed weights with the cache
                    anon_mb=round(first["anon"] / 1024, 1),
                    second_context_mb=round(second_mb, 1),
                    second_context_ratio_to_bundle=round(second_mb / bundle_mb, 2),
                )
            )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
