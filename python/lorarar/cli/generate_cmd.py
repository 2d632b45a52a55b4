"""``lorarar generate``: one image from a bundle and a LoRA pair, with a timing breakdown.

``--engine native`` runs the C++ engine (what phones run); ``--engine torch`` runs the PyTorch reference pipeline
(diffusers, on the model the bundle was exported from) with the same scheduler, seed and merge.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lorarar.cli.common import finite_float, non_negative_int
from lorarar.errors import LoraError
from lorarar.formats.png import save_png

SCHEDULERS = ("ddim", "euler", "lcm")


def register(sub: Any) -> None:
    p = sub.add_parser("generate", help="generate an image with a merged LoRA pair")
    p.add_argument("--bundle", type=Path, help="bundle folder from 'lorarar export' (default: the default world's)")
    p.add_argument("--content", help="content LoRA: a file, or a subject of the default world")
    p.add_argument("--style", help="style LoRA: a file, or a style of the default world")
    p.add_argument("--method", choices=("hypernet", "direct"), default="hypernet", help="how the pair is merged")
    p.add_argument("--prompt", help="default: the default world's prompt for the pair")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--steps", type=non_negative_int, default=25)
    p.add_argument(
        "--guidance",
        type=finite_float,
        help="classifier-free guidance (default: the default world's 3 with its bundle, else 5)",
    )
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=non_negative_int, default=0, help="1: single-threaded; 0: all cores")
    p.add_argument("--engine", choices=("native", "torch"), default="native")
    p.add_argument(
        "--packed-cache",
        type=Path,
        metavar="DIR",
        help="native engine: keep XNNPACK's packed weights in this existing folder (written once, mapped after)",
    )
    p.add_argument("--json", action="store_true", help="print the timings as one JSON object")
    p.add_argument("--out", type=Path, required=True, metavar="IMG.png")
    p.set_defaults(run=run)


def resolve_lora(value: str | None, kind: str) -> Path | None:
    """A path, or a name from the default world's library."""
    if value is None:
        return None
    path = Path(value)
    if path.exists() or "/" in value or value.endswith(".safetensors"):
        return path
    from lorarar.world import catalog

    paths = catalog.paths()
    candidate = paths.content_lora(value) if kind == "content" else paths.style_lora(value)
    if not candidate.exists():
        raise LoraError(f"{value}: no such file, and no {kind} LoRA of that name in the default world")
    return candidate


def default_prompt(content: str | None, style: str | None) -> str:
    from lorarar.world import catalog, styles, subjects

    c = content if content in subjects.NAMED_SUBJECT_PARAMS else None
    s = style if style in styles.NAMED_STYLES else None
    if c and s:
        return catalog.merged_prompt(c)
    if c:
        return catalog.content_prompt(c)
    if s:
        return catalog.style_prompt(catalog.STYLE_IMAGE_CLASS[s])
    raise LoraError("--prompt is required unless --content/--style name the default world's LoRAs")


def default_bundle() -> Path:
    """The default world's XNNPACK bundle (exported into .cache/bundles/ on first use)."""
    from lorarar.demo import default_bundle as exported

    return exported()


def generate_native(
    args: argparse.Namespace, content: Path | None, style: Path | None, prompt: str, bundle: Path
) -> tuple[np.ndarray, dict[str, float]]:
    from lorarar._native import Context, Engine, LoraFile

    t0 = time.perf_counter()
    engine = Engine.load(str(bundle), args.threads, packed_cache_dir=str(args.packed_cache or ""))
    ctx = Context.create(engine)
    t_load = time.perf_counter()
    loras = [LoraFile.load(str(p)) if p else None for p in (content, style)]
    t_lora = time.perf_counter()
    method = args.method if content and style else "single"
    merge = ctx.set_loras(loras[0], loras[1], method)
    # One bar on stderr over the steps and then the decoder's runs (a tiled SD 1.5 decode takes as long as two
    # steps); tqdm leaves it out when stderr is not a terminal.
    with tqdm(total=args.steps + engine.vae_tiles, desc="denoise", unit="run", disable=None, leave=False) as bar:

        def stepped(step: int, total: int) -> bool:
            bar.update(1)
            return True

        def decoded(tile: int, total: int) -> bool:
            bar.set_description(f"decode {tile}/{total}", refresh=False)
            bar.update(1)
            return True

        image, timings, _ = ctx.generate(
            prompt,
            args.negative_prompt,
            args.steps,
            args.guidance,
            args.scheduler,
            args.seed,
            progress=stepped,
            decode_progress=decoded,
        )
    out = {
        "bundle_load_ms": (t_load - t0) * 1e3,
        "lora_load_ms": (t_lora - t_load) * 1e3,
        "merge_ms": merge["total_ms"],
        "hypernet_ms": merge["hypernet_ms"],
        "fold_ms": merge["fold_ms"],
    }
    out.update(timings)
    out["end_to_end_ms"] = (time.perf_counter() - t_load) * 1e3
    return np.asarray(image), out


def run(args: argparse.Namespace) -> int:
    content = resolve_lora(args.content, "content")
    style = resolve_lora(args.style, "style")
    if args.steps < 1:
        raise LoraError("--steps must be at least 1")
    prompt = args.prompt if args.prompt is not None else default_prompt(args.content, args.style)
    bundle = args.bundle or default_bundle()
    if args.guidance is None:
        from lorarar.world import catalog

        args.guidance = catalog.GUIDANCE if args.bundle is None else 5.0
    if args.packed_cache is not None and args.engine != "native":
        raise LoraError("--packed-cache is for the native engine (--engine native)")
    if args.engine == "native":
        image, timings = generate_native(args, content, style, prompt, bundle)
    else:
        from lorarar.pipeline import generate_torch

        image, timings = generate_torch(
            bundle,
            content,
            style,
            args.method,
            prompt,
            args.negative_prompt,
            args.steps,
            args.guidance,
            args.scheduler,
            args.seed,
        )
    save_png(image, args.out)
    if args.json:
        print(json.dumps({"engine": args.engine, "prompt": prompt, **timings}))
    else:
        print(f"{args.engine}: '{prompt}' -> {args.out}")
        for key, value in timings.items():
            print(f"  {key:>16}: {value:9.2f} ms")
    return 0
