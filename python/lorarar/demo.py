"""``make demo``: the engine's main job on the embedded default world.

1. The default world's pipeline is exported once to an ExecuTorch/XNNPACK bundle under .cache/bundles/ (kept and
   reused while the model and hypernetwork are unchanged; the manifest records their hashes).
2. The native engine loads the bundle once, keeping XNNPACK's packed weights in a folder beside it (written on the
   first run, mapped by later ones, as an app would do). For a content and a style LoRA from the test split (never
   seen by the hypernetwork) it generates, with the same seed: the base model, each LoRA alone, their direct merge
   and the LoRA.rar merge, swapping pairs in the one context: no re-export, recompilation or reload of base weights.
3. Every image is saved under out/demo/ with a grid, and the timings are printed (merge, per step, end to end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("out/demo")
CONTENT, STYLE = "truck", "denim"


def source_digest(folder: Path, pattern: str = "**/*") -> str:
    """A hash of the files under a folder that match ``pattern`` (names and bytes): whether a cached bundle is
    stale."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.glob(pattern) if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def exporter_digest() -> str:
    """The exporter's own source (a change to a graph form or the quantizer makes earlier exports stale).
    ``lorarar.export`` is a namespace package (no ``__file__``): its folder is found beside this module."""
    return source_digest(Path(__file__).resolve().parent / "export", "*.py")


def default_bundle_digest(pipeline: Path, hypernet: Path | None) -> str:
    """What a cached default bundle was exported from: the model, the hypernetwork and the exporter."""
    return source_digest(pipeline) + (source_digest(hypernet) if hypernet else "") + exporter_digest()


def packed_cache_dir(bundle: Path) -> Path:
    """The folder beside a bundle where the engine keeps its packed weights (files named by program hash)."""
    return bundle.with_name(bundle.name + ".packed")


def default_bundle(root: Path | None = None, quiet: bool = False, quant: str = "none") -> Path:
    """The default world's XNNPACK bundle (``quant`` none or int8, w8a8), exported on first use."""
    from lorarar.export.bundle import COMPONENTS, ExportOptions, export_bundle
    from lorarar.world import catalog

    paths = catalog.paths(root)
    hypernet = paths.hypernet if (paths.hypernet / "config.json").exists() else None
    digest = default_bundle_digest(paths.pipeline, hypernet)
    bundle = catalog.repo_root() / ".cache" / "bundles" / ("default-xnnpack" + ("" if quant == "none" else f"-{quant}"))
    stamp = bundle.with_name(bundle.name + ".source.sha256")  # beside it: a bundle holds only its manifest's files
    if stamp.exists() and stamp.read_text() == digest:
        return bundle
    if not quiet:
        print(f"exporting the default world to {bundle} (once; a few minutes on two cores)", flush=True)
    # Files there are named by program hash, so old ones are never used again, only kept: clear them.
    shutil.rmtree(packed_cache_dir(bundle), ignore_errors=True)
    components = COMPONENTS if hypernet else tuple(c for c in COMPONENTS if c != "hypernet")
    export_bundle(
        ExportOptions(
            model=paths.pipeline,
            out=bundle,
            backend="xnnpack",
            quant=quant,
            max_rank=32,
            hypernet=hypernet,
            components=components,
            progress=not quiet,
        )
    )
    stamp.write_text(digest)
    return bundle


def main(argv: list[str] | None = None) -> int:
    from lorarar import LoraFile
    from lorarar._native import Context, Engine
    from lorarar.formats.png import save_png
    from lorarar.world import catalog

    parser = argparse.ArgumentParser(prog="python -m lorarar.demo")
    parser.add_argument("--content", default=CONTENT)
    parser.add_argument("--style", default=STYLE)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    paths = catalog.paths()
    bundle = default_bundle()
    cache = packed_cache_dir(bundle)
    cache.mkdir(parents=True, exist_ok=True)
    cache_state = "mapped" if any(cache.iterdir()) else "written"
    t0 = time.perf_counter()
    engine = Engine.load(str(bundle), packed_cache_dir=str(cache))
    load_ms = (time.perf_counter() - t0) * 1e3
    content = LoraFile.load(str(paths.content_lora(args.content)))
    style = LoraFile.load(str(paths.style_lora(args.style)))
    runs: list[tuple[str, Any, Any, str, str]] = [
        ("base", None, None, "direct", catalog.merged_prompt(args.content)),
        ("content", content, None, "single", catalog.content_prompt(args.content)),
        ("style", None, style, "single", catalog.style_prompt(catalog.subject_class(args.content))),
        ("direct", content, style, "direct", catalog.merged_prompt(args.content)),
    ]
    if engine.has_hypernet:
        runs.append(("lora.rar", content, style, "hypernet", catalog.merged_prompt(args.content)))
    else:
        print("the default world has no trained hypernetwork yet: the LoRA.rar merge is skipped")
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Context.create(engine)
    rows = []
    print(
        json.dumps(
            {
                "bundle": str(bundle),
                "backend": engine.backend,
                "load_ms": round(load_ms, 1),
                "packed_cache": f"{cache} ({cache_state})",
                "pair": [args.content, args.style],
            }
        )
    )
    for name, c, s, method, prompt in runs:
        merge = ctx.set_loras(c, s, method=method)
        images, steps, totals = [], [], []
        for seed in range(args.seeds):
            image, timings, _ = ctx.generate(prompt, steps=args.steps, guidance=catalog.GUIDANCE, seed=seed)
            images.append(image)
            steps.append(timings["step_ms_median"])
            totals.append(timings["total_ms"])
        row = np.concatenate(images, axis=1)
        rows.append(row)
        save_png(row, args.out / f"{name.replace('.', '')}.png", zoom=4)
        print(
            json.dumps(
                {
                    "run": name,
                    "prompt": prompt,
                    "merge_ms": round(merge.get("total_ms", 0.0), 3),
                    "merge_breakdown_ms": {k: round(v, 3) for k, v in merge.items()},
                    "step_ms_median": round(float(np.median(steps)), 2),
                    "image_ms_median": round(float(np.median(totals)), 1),
                }
            ),
            flush=True,
        )
    save_png(np.concatenate(rows, axis=0), args.out / "grid.png", zoom=4)
    print(f"rows of {args.out / 'grid.png'}: {', '.join(r[0] for r in runs)}; {args.seeds} seeds each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
