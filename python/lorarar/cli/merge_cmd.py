"""``lorarar merge``: merge a content LoRA and a style LoRA into one LoRA file."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from lorarar._native import Adapter, LoraFile, load_coefficients
from lorarar.cli.common import finite_float, load_lora, open_base
from lorarar.errors import LoraError
from lorarar.merge.peft_merge import PEFT_METHODS

METHODS = ("direct", "columns", "hypernet", "ziplora", *PEFT_METHODS)


def register(sub: Any) -> None:
    p = sub.add_parser("merge", help="merge a content and a style LoRA into one LoRA file")
    p.add_argument("--content", required=True, help="content (subject) LoRA")
    p.add_argument("--style", required=True, help="style LoRA")
    p.add_argument("--base", metavar="UNET_DIR", help="map and check layers against this diffusers UNet")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="direct",
        help="direct: weighted sum; columns: --coeffs; hypernet: LoRA.rar; ziplora: per-pair optimisation; "
        "peft-cat/-ties/-dare: peft's add_weighted_adapter (the scales are its weights)",
    )
    p.add_argument(
        "--hypernet",
        metavar="PATH",
        help="hypernetwork folder or published .safetensors (default: the default world's)",
    )
    p.add_argument("--content-scale", type=finite_float, default=1.0, metavar="A")
    p.add_argument("--style-scale", type=finite_float, default=1.0, metavar="B")
    p.add_argument("--coeffs", metavar="FILE", help="column coefficients (<module>.content / <module>.style)")
    p.add_argument("--engine", choices=("native", "torch"), default="native")
    p.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32", help="dtype of the written factors")
    p.add_argument("--out", required=True, metavar="MERGED.safetensors")
    p.set_defaults(run=run)


Coefficients = dict[str, tuple[np.ndarray[Any, np.dtype[np.float32]], np.ndarray[Any, np.dtype[np.float32]]]]


def read_coefficients(path: str) -> Coefficients:
    return {
        name: (np.asarray(c, dtype=np.float32), np.asarray(s, dtype=np.float32))
        for name, (c, s) in load_coefficients(path).items()
    }


def merge_native(
    content: LoraFile, style: LoraFile, method: str, a: float, b: float, coefficients: Coefficients | None, where: str
) -> Adapter:
    try:
        return Adapter.merge(content, style, method, a, b, coefficients)
    except LoraError as e:
        raise LoraError(f"{where}: {e}", e.code) from None


def run(args: argparse.Namespace) -> int:
    if args.method == "columns" and not args.coeffs:
        raise LoraError("--method columns needs --coeffs FILE")
    if args.method != "columns" and args.coeffs:
        raise LoraError("--coeffs is only used with --method columns")
    if args.method not in ("direct", "columns"):
        return run_learned(args)
    start = time.perf_counter()
    base = open_base(args.base)
    content = load_lora(args.content, base)
    style = load_lora(args.style, base)
    coefficients = read_coefficients(args.coeffs) if args.coeffs else None
    where = args.coeffs if args.coeffs else f"{args.content}, {args.style}"
    # The native merge validates (shapes, coefficient lengths) for both engines.
    adapter = merge_native(content, style, args.method, args.content_scale, args.style_scale, coefficients, where)
    if args.engine == "native":
        adapter.save(args.out, args.dtype)
    else:
        save_torch_merge(content, style, args, coefficients)
    ranks = sorted({rank for _, rank, _, _ in adapter.layers})
    elapsed = (time.perf_counter() - start) * 1e3
    print(
        f"merged {len(adapter.layers)} layers (rank {', '.join(map(str, ranks))}) into {args.out} in {elapsed:.1f} ms"
    )
    return 0


def run_learned(args: argparse.Namespace) -> int:
    """hypernet / ziplora / peft-*: computed in PyTorch (coefficients, or peft's merged adapter), folded and
    written by the native engine."""
    from pathlib import Path

    from lorarar.merge.methods import load_hypernet, merge
    from lorarar.world import catalog

    if args.engine != "native":
        raise LoraError(
            f"--method {args.method} merges in PyTorch and writes through the native engine; use --engine native"
        )
    base = open_base(args.base)
    content = load_lora(args.content, base)
    style = load_lora(args.style, base)
    hypernet = world = names = None
    if args.method == "hypernet":
        hypernet = load_hypernet(Path(args.hypernet) if args.hypernet else catalog.paths().hypernet)
    elif args.method == "ziplora":
        names = _library_names(args.content, args.style)
        from lorarar.hypernet.train import PairWorld

        world = PairWorld(names=list(names))
    adapter, seconds = merge(
        content,
        style,
        args.method,
        content_scale=args.content_scale,
        style_scale=args.style_scale,
        hypernet=hypernet,
        world=world,
        names=names,
    )
    adapter.save(args.out, args.dtype)
    print(f"merged {len(adapter.layers)} layers with {args.method} into {args.out} in {seconds * 1e3:.1f} ms")
    return 0


def _library_names(content: str, style: str) -> tuple[str, str]:
    from pathlib import Path

    from lorarar.world import catalog

    paths = catalog.paths()
    c, s = Path(content).stem, Path(style).stem
    if (
        Path(content).resolve() != paths.content_lora(c).resolve()
        or Path(style).resolve() != paths.style_lora(s).resolve()
    ):
        raise LoraError(
            "ZipLoRA optimises against the LoRAs' training images, which only the default world's "
            "library has: pass its files (see 'lorarar world list')"
        )
    return c, s


def save_torch_merge(
    content: LoraFile, style: LoraFile, args: argparse.Namespace, coefficients: Coefficients | None
) -> None:
    import torch

    from lorarar.merge import reference

    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    coeffs = {k: (torch.from_numpy(c), torch.from_numpy(s)) for k, (c, s) in (coefficients or {}).items()}
    folded = reference.fold(
        reference.read_factors(content), reference.read_factors(style), args.content_scale, args.style_scale, coeffs
    )
    reference.save_adapter({k: (a.to(dtype), b.to(dtype)) for k, (a, b) in folded.items()}, args.out)
