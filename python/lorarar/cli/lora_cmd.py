"""``lorarar lora info``: what a LoRA file holds, as the engine reads it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lorarar.cli.common import load_lora, open_base


def register(sub: Any) -> None:
    lora = sub.add_parser("lora", help="inspect LoRA files")
    lora_sub = lora.add_subparsers(dest="lora_command", required=True, parser_class=type(lora))
    info = lora_sub.add_parser("info", help="list a LoRA's layers (format, ranks, alphas, shapes)")
    info.add_argument("path", help=".safetensors file or peft / diffusers adapter folder")
    info.add_argument("--base", metavar="UNET_DIR", help="map and check layers against this diffusers UNet")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=run_info)


def describe(path: str, base_dir: str | None) -> dict[str, Any]:
    lora = load_lora(path, open_base(base_dir))
    return {
        "path": lora.path,
        "format": lora.format,
        "layers": [
            {
                "name": layer.name,
                "rank": layer.rank,
                "alpha": layer.alpha,
                "scale": layer.scale,
                "in_features": layer.in_features,
                "out_features": layer.out_features,
                "dtype": layer.dtype,
            }
            for layer in lora.layers
        ],
        "text_encoder_tensors": len(lora.text_encoder_keys),
    }


def run_info(args: argparse.Namespace) -> int:
    info = describe(args.path, args.base)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['path']}: {info['format']}, {len(info['layers'])} layers")
    for layer in info["layers"]:
        print(
            f"  {layer['name']}  rank {layer['rank']}  alpha {layer['alpha']:g}  "
            f"{layer['in_features']} -> {layer['out_features']}  {layer['dtype']}"
        )
    if info["text_encoder_tensors"]:
        print(f"  (+{info['text_encoder_tensors']} text-encoder tensors, not applied by the engine)")
    return 0
