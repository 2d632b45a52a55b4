"""``lorarar fuse``: a UNet folder with a LoRA fused into its weights (diffusers layout)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from lorarar._native import Adapter, BaseModel, LoraFile
from lorarar.cli.common import finite_float, non_negative_int

WEIGHTS = "diffusion_pytorch_model.safetensors"
INDEX = WEIGHTS + ".index.json"


def register(sub: Any) -> None:
    p = sub.add_parser("fuse", help="write a UNet folder with a LoRA fused into its weights")
    p.add_argument("--base", required=True, metavar="UNET_DIR", help="diffusers UNet (or pipeline) folder")
    p.add_argument("--lora", required=True, metavar="PATH", help="LoRA file or adapter folder")
    p.add_argument("--scale", type=finite_float, default=1.0)
    p.add_argument("--engine", choices=("native", "torch"), default="native")
    p.add_argument("--threads", type=non_negative_int, default=0, help="0: one per hardware thread")
    p.add_argument("--kernel", default="auto", help="native kernel: auto, scalar, avx2, neon")
    p.add_argument("--out", required=True, metavar="UNET_OUT_DIR")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    base = BaseModel.open(args.base)
    lora = LoraFile.load(args.lora, base=base)
    adapter = Adapter.single(lora)
    if args.engine == "native":
        adapter.fuse_unet_dir(base, args.out, args.scale, args.threads, args.kernel)
    else:
        fuse_torch(base, lora, args.out, args.scale)
    elapsed = (time.perf_counter() - start) * 1e3
    print(f"fused {len(adapter.layers)} layers of {lora.path} into {args.out} in {elapsed:.1f} ms")
    return 0


def fuse_torch(base: BaseModel, lora: LoraFile, out: str, scale: float) -> None:
    """The PyTorch reference path: same inputs (parsed natively), math from lorarar.merge.reference."""
    from safetensors.torch import load_file, save_file

    from lorarar.formats.atomic import atomic_dir
    from lorarar.merge import reference

    src = Path(base.dir)
    folded = reference.fold(reference.read_factors(lora), {})
    if (src / WEIGHTS).exists():
        shards = [WEIGHTS]
    else:
        shards = sorted(set(json.loads((src / INDEX).read_text())["weight_map"].values()))
    with atomic_dir(out) as tmp:
        for shard in shards:
            tensors = load_file(str(src / shard))
            for name, (down, up) in folded.items():
                key = f"{name}.weight"
                if key in tensors:
                    tensors[key] = reference.fuse(tensors[key], down, up, scale)
            save_file(tensors, str(tmp / shard))
        for extra in ("config.json", INDEX):
            if (src / extra).exists():
                shutil.copy(src / extra, tmp / extra)
