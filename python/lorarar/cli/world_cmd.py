"""``lorarar world``: build, list, sample and score the embedded default world."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STAGES = ("base", "loras", "metrics")


def register(sub: Any) -> None:
    world = sub.add_parser("world", help="the embedded default world (model family, LoRA library, metrics)")
    world_sub = world.add_subparsers(dest="world_command", required=True, parser_class=type(world))

    train = world_sub.add_parser("train", help="rebuild the world's artifacts from seeds (resumable)")
    train.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    train.add_argument("--out", type=Path, help="artifact folder (default: the committed default world)")
    train.add_argument("--work", type=Path, help="checkpoint folder (default: .cache/world)")
    train.add_argument("--quick", action="store_true", help="a few steps per stage (smoke test, not a usable world)")
    train.set_defaults(run=run_train)

    lst = world_sub.add_parser("list", help="where the artifacts are, and the splits")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=run_list)


def run_train(args: argparse.Namespace) -> int:
    from lorarar.world import catalog

    out = args.out or catalog.default_dir()
    work = args.work or catalog.repo_root() / ".cache" / "world"
    stages = STAGES if args.stage == "all" else (args.stage,)
    for stage in stages:
        if stage == "base":
            from lorarar.world.train_base import BaseConfig, train_base

            cfg = BaseConfig(images=512, vae_steps=4, unet_steps=4, checkpoint_every=2) if args.quick else BaseConfig()
            facts = train_base(catalog.paths(out).pipeline, work / "base", cfg)
            print(json.dumps({"stage": "base", **facts}))
        else:
            raise SystemExit(f"error: stage {stage} is not available yet")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lorarar.world import catalog

    p = catalog.paths()
    info = {
        "root": str(p.root),
        "pipeline": str(p.pipeline),
        "subjects": {split: list(names) for split, names in catalog.SUBJECT_SPLITS.items()},
        "styles": {split: list(names) for split, names in catalog.STYLE_SPLITS.items()},
        "content_loras": {s: str(p.content_lora(s)) for names in catalog.SUBJECT_SPLITS.values() for s in names},
        "style_loras": {s: str(p.style_lora(s)) for names in catalog.STYLE_SPLITS.values() for s in names},
        "prompts": {
            "content": catalog.content_prompt("pip"),
            "style": catalog.style_prompt("bird"),
            "merged": catalog.merged_prompt("pip"),
        },
    }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0
