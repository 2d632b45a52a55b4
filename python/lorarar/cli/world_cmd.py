"""``lorarar world``: build, list, sample and score the embedded default world."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lorarar.errors import LoraError
from lorarar.world import catalog

STAGES = ("base", "loras", "metrics")


def register(sub: Any) -> None:
    world = sub.add_parser("world", help="the embedded default world (model family, LoRA library, metrics)")
    world_sub = world.add_subparsers(dest="world_command", required=True, parser_class=type(world))

    train = world_sub.add_parser("train", help="rebuild the world's artifacts from seeds (resumable)")
    train.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    train.add_argument("--out", type=Path, help="artifact folder (default: the committed default world)")
    train.add_argument("--work", type=Path, help="checkpoint folder (default: .cache/world)")
    train.add_argument("--quick", action="store_true", help="a few steps per stage (smoke test, not a usable world)")
    train.add_argument("--only", help="loras stage: these library LoRAs only (comma-separated names)")
    train.add_argument(
        "--train-scope",
        choices=catalog.TRAIN_SCOPES,
        default="library",
        help="loras stage: all also trains LoRAs for the train names outside the library (16 more, for "
        "'train-hypernet --train-scope all'; use --out with a copy of the world)",
    )
    train.add_argument(
        "--lora-steps-scale", type=float, default=1.0, help="loras stage: multiply the content and style steps"
    )
    train.set_defaults(run=run_train)

    lst = world_sub.add_parser("list", help="where the artifacts are, and the splits")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=run_list)

    sample = world_sub.add_parser("sample", help="generate images with the PyTorch reference pipeline")
    sample.add_argument("--content", help="content LoRA (subject) name")
    sample.add_argument("--style", help="style LoRA name")
    sample.add_argument(
        "--method", default=None, help="none | content | style | direct (default: direct with both, else the one given)"
    )
    sample.add_argument("--n", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=25)
    sample.add_argument("--guidance", type=float, default=catalog.GUIDANCE)
    sample.add_argument("--out", type=Path, required=True)
    sample.set_defaults(run=run_sample)

    report = world_sub.add_parser("report", help="measure the world's facts (LoRAs alone, base, direct merge)")
    report.add_argument("--n", type=int, default=8, help="images per LoRA / pair")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--out", type=Path, help="results folder (default: benchmarks/results)")
    report.set_defaults(run=run_report)

    score = world_sub.add_parser("score", help="content / style fidelity of a folder of PNGs")
    score.add_argument("dir", type=Path)
    score.add_argument("--content")
    score.add_argument("--style")
    score.add_argument("--json", action="store_true")
    score.set_defaults(run=run_score)


def run_train(args: argparse.Namespace) -> int:
    out = args.out or catalog.default_dir()
    work = args.work or catalog.repo_root() / ".cache" / "world"
    stages = STAGES if args.stage == "all" else (args.stage,)
    if not args.lora_steps_scale > 0:
        raise LoraError(f"--lora-steps-scale {args.lora_steps_scale}: must be a positive number")
    only = _library_names(args.only, args.train_scope)
    for stage in stages:
        if stage == "base":
            from lorarar.world.train_base import BaseConfig, train_base

            cfg = BaseConfig(images=512, vae_steps=4, unet_steps=4, checkpoint_every=2) if args.quick else BaseConfig()
            facts = train_base(catalog.paths(out).pipeline, work / "base", cfg)
        elif stage == "loras":
            from lorarar.world.train_lora import LoraConfig, train_loras

            lcfg = LoraConfig(content_steps=2, style_steps=2, prior_images=8) if args.quick else LoraConfig()
            lcfg.content_steps = round(lcfg.content_steps * args.lora_steps_scale)
            lcfg.style_steps = round(lcfg.style_steps * args.lora_steps_scale)
            facts = train_loras(out, lcfg, only=only, scope=args.train_scope)
        else:
            from lorarar.world.metrics import MetricsConfig, train_metrics

            mcfg = MetricsConfig(train_images=256, test_images=64, steps=4) if args.quick else MetricsConfig()
            facts = train_metrics(out, mcfg)
        from lorarar import data_parallel
        from lorarar.world.train_lora import write_facts

        # Under accelerate launch / torchrun every process has the stage's facts; one reports them.
        if data_parallel.state().is_main_process:
            print(json.dumps({"stage": stage, **facts}))
            write_facts(catalog.paths(out).facts, stage, facts)
    return 0


def _library_names(only: str | None, scope: str = "library") -> list[str] | None:
    if only is None:
        return None
    names = [n for n in only.split(",") if n]
    library = set(catalog.library_subjects(scope)) | set(catalog.library_styles(scope))
    unknown = [n for n in names if n not in library]
    if unknown or not names:
        where = "the LoRA library" if scope == "library" else "the LoRA library or the train split"
        raise LoraError(f"--only {only!r}: not in {where}: {', '.join(unknown) or '(empty)'}")
    return names


def _check_names(content: str | None, style: str | None) -> None:
    from lorarar.world.styles import NAMED_STYLES
    from lorarar.world.subjects import NAMED_SUBJECT_PARAMS

    if content and content not in NAMED_SUBJECT_PARAMS:
        raise LoraError(f"unknown content {content!r}; see 'lorarar world list'")
    if style and style not in NAMED_STYLES:
        raise LoraError(f"unknown style {style!r}; see 'lorarar world list'")


def run_sample(args: argparse.Namespace) -> int:
    from lorarar.formats.atomic import atomic_dir
    from lorarar.formats.png import save_png, to_uint8
    from lorarar.world.sample import sample

    _check_names(args.content, args.style)
    method = args.method or (
        "direct" if args.content and args.style else "content" if args.content else "style" if args.style else "none"
    )
    images = sample(args.content, args.style, method, args.n, args.seed, steps=args.steps, guidance=args.guidance)
    with atomic_dir(args.out) as tmp:
        for i, img in enumerate(images):
            save_png(to_uint8(img), tmp / f"{i:04d}.png")
    print(f"wrote {len(images)} images to {args.out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from lorarar.world.evaluate import RESULTS
    from lorarar.world.report import measure

    facts = measure(args.n, args.seed, out_dir=args.out or RESULTS)
    print(json.dumps({k: v for k, v in facts.items() if k != "per_lora"}))
    return 0


def run_score(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from lorarar.world.metrics import Scorer

    _check_names(args.content, args.style)
    files = sorted(args.dir.glob("*.png"))
    if not files:
        raise LoraError(f"{args.dir}: no PNG images")
    images = []
    for f in files:
        try:
            img = Image.open(f).convert("RGB").resize((64, 64))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's decoders raise all
            raise LoraError(f"{f}: not a readable image ({e})") from None
        images.append(np.asarray(img, dtype=np.float32) / 255.0)
    result = Scorer().score(np.stack(images), args.content, args.style)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if not key.startswith("predicted"):
                print(f"{key}: {value}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lorarar.world import catalog

    p = catalog.paths()
    info = {
        "root": str(p.root),
        "pipeline": str(p.pipeline),
        "subjects": {split: list(names) for split, names in catalog.SUBJECT_SPLITS.items()},
        "styles": {split: list(names) for split, names in catalog.STYLE_SPLITS.items()},
        "content_loras": {s: str(p.content_lora(s)) for s in catalog.library_subjects()},
        "style_loras": {s: str(p.style_lora(s)) for s in catalog.library_styles()},
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
