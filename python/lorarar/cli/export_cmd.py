"""``lorarar export``: a Stable Diffusion folder -> a bundle of on-device programs (see export/BUNDLE.md)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from lorarar.cli.common import non_negative_int


def register(sub: Any) -> None:
    from lorarar.export.bundle import BACKENDS, COMPONENTS, DEFAULT_MAX_RANK

    p = sub.add_parser("export", help="export text encoder, UNet (with the LoRA slot), VAE decoder and hypernetwork")
    p.add_argument("--model", metavar="SD_DIR", help="diffusers SD 1.x/2.x/SDXL folder (default: the embedded default)")
    p.add_argument(
        "--random-default",
        action="store_true",
        help="export a same-config pipeline with random weights instead of the default model",
    )
    p.add_argument(
        "--hypernet",
        metavar="H",
        type=Path,
        help="folder with hypernet.safetensors + config.json (default: random, widths of this UNet)",
    )
    p.add_argument("--backend", required=True, choices=sorted(BACKENDS))
    p.add_argument(
        "--quant", default="none", help="xnnpack: none|int8|w8a8; coreml: none|int8|palette6|palette4; onnx: none|int8"
    )
    p.add_argument(
        "--max-rank",
        type=non_negative_int,
        default=DEFAULT_MAX_RANK,
        help=f"the LoRA slot's max rank (content + style ranks), default {DEFAULT_MAX_RANK}",
    )
    p.add_argument(
        "--components", default=",".join(COMPONENTS), help="comma-separated subset of " + ",".join(COMPONENTS)
    )
    p.add_argument(
        "--vae-tile",
        type=non_negative_int,
        metavar="N",
        help="decode the latent in N x N tiles (latent pixels; SD 1.5: 28 of 64) so the VAE decoder's "
        "memory follows the tile, not the image (default: the whole latent at once)",
    )
    p.add_argument(
        "--vae-tile-overlap",
        type=non_negative_int,
        metavar="M",
        help="least overlap of neighbouring tiles, in latent pixels (default: a quarter of the tile)",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the programs of the bundle already at --out that --components does not name (it must come from "
        "the same model, backend and quantization): e.g. --components vae_decoder --vae-tile 28 --update adds tiled "
        "decoding to a bundle without exporting its UNet again",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="BUNDLE_DIR", type=Path)
    p.set_defaults(run=run)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the atomic writer, which removes its temporary folder


def run(args: argparse.Namespace) -> int:
    import tempfile

    from lorarar.export.bundle import ExportOptions, default_model, export_bundle, random_source
    from lorarar.export.errors import ExportError

    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="lorarar-random-") as scratch:
        if args.model:
            model = Path(args.model)
        elif args.random_default:
            model = random_source(Path(scratch) / "pipeline", "world")
        else:
            model = default_model()
            if not model.exists():
                raise ExportError(
                    f"{model}: the default model is not there yet (pass --model SD_DIR, or "
                    "--random-default for its configuration with random weights)"
                )
        opts = ExportOptions(
            model=model,
            out=args.out,
            backend=args.backend,
            quant=args.quant,
            max_rank=args.max_rank,
            hypernet=args.hypernet,
            components=tuple(c.strip() for c in args.components.split(",") if c.strip()),
            vae_tile=args.vae_tile,
            vae_tile_overlap=args.vae_tile_overlap,
            update=args.update,
            progress=not args.quiet,
        )
        doc = export_bundle(opts)
    size = sum(f["bytes"] for f in doc["files"].values())
    summary = {
        "out": str(args.out),
        "backend": args.backend,
        "quant": args.quant,
        "programs": sorted(doc["programs"]),
        "files": len(doc["files"]),
        "bytes": size,
        "seconds": doc["export_seconds"],
    }
    print(json.dumps(summary), file=sys.stdout)
    return 0
