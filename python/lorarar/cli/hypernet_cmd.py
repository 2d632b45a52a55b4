"""``lorarar train-hypernet`` and ``lorarar eval``: LoRA.rar's hypernetwork and the paper's comparison."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lorarar.world.catalog import TRAIN_SCOPES

# lorarar.hypernet.train.OBJECTIVES, written out: importing it would load torch and diffusers for every command
# (tests/python/test_hypernet_train.py keeps the two equal).
OBJECTIVES = ("ziplora", "ground-truth", "ziplora+ground-truth", "oracle")


def register(sub: Any) -> None:
    train = sub.add_parser("train-hypernet", help="train the merging hypernetwork on the default world's train pairs")
    train.add_argument("--out", type=Path, help="output folder (default: the default world's hypernet/)")
    train.add_argument("--work", type=Path, help="checkpoint folder (default: .cache/world/hypernet)")
    train.add_argument("--steps", type=int, help="training steps (default: the configured budget)")
    train.add_argument(
        "--lam", type=float, help="weight of ZipLoRA's orthogonality term, sum of |cos(m_c, m_s)| (default 0.01)"
    )
    train.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="ziplora",
        help="ziplora: the paper's (match each LoRA alone on its own images); ground-truth: denoise the world's "
        "renders of each train pair under the merged prompt; oracle: regress each train pair's coefficients fitted "
        "to those renders (--lam does not apply)",
    )
    train.add_argument("--batch", type=int, help="images per branch a step; with --objective oracle: pairs a step")
    train.add_argument("--val-every", type=int, help="steps between validations (the best is kept; default 250)")
    train.add_argument(
        "--merged",
        default="to_q,to_out.0",
        help="comma-separated layer names the hypernetwork merges; the others are summed (default to_q,to_out.0, "
        "as published)",
    )
    train.add_argument(
        "--proximity", type=float, default=0.0, help="weight of mean (m - 1)^2, which keeps merges near the sum"
    )
    train.add_argument(
        "--train-scope",
        choices=TRAIN_SCOPES,
        default="library",
        help="library: the LoRA library's 8 x 8 train pairs; all: every train subject x style (16 x 16; their LoRAs "
        "come from 'lorarar world train --stage loras --train-scope all --out ROOT')",
    )
    train.add_argument("--root", type=Path, help="world folder the LoRAs come from (default: the default world)")
    train.set_defaults(run=run_train)

    ev = sub.add_parser("eval", help="compare merge methods on unseen pairs of the default world")
    ev.add_argument("--split", choices=("train", "val", "test"), default="test")
    ev.add_argument(
        "--methods",
        help="comma-separated: direct, ziplora, hypernet, peft-cat, peft-ties, peft-dare, content, style (the last "
        "two: one LoRA of the pair alone); a merge may carry the user's scalar weights, NAME@WC:WS (direct@1:0.7); "
        "default direct,ziplora,hypernet (direct,hypernet with --bundle)",
    )
    ev.add_argument("--n", type=int, default=8, help="images per pair and method")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--pairs", type=int, help="evaluate only the first N pairs")
    ev.add_argument("--hypernet", type=Path, help="hypernetwork folder (default: the default world's)")
    ev.add_argument(
        "--bundle", type=Path, help="generate with the native engine on this exported bundle (e.g. an int8 one)"
    )
    ev.add_argument("--judge", metavar="URL", help="also ask an OpenAI-compatible vision endpoint (MLLM judge)")
    ev.add_argument("--judge-model", default="default")
    ev.add_argument("--out", type=Path, help="results folder (default: benchmarks/results)")
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")
    ev.set_defaults(run=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from lorarar.hypernet.train import HyperTrainConfig, train_hypernet
    from lorarar.world import catalog

    cfg = HyperTrainConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    if args.lam is not None:
        cfg.lam = args.lam
    cfg.objective = args.objective
    if args.batch is not None:
        cfg.batch = args.batch
    if args.val_every is not None:
        cfg.val_every = args.val_every
    cfg.proximity = args.proximity
    cfg.train_scope = args.train_scope
    cfg.merged = tuple(m.strip() for m in args.merged.split(",") if m.strip())
    out = args.out or catalog.paths().hypernet
    work = args.work or catalog.repo_root() / ".cache" / "world" / "hypernet"
    facts = train_hypernet(out, work, cfg, root=args.root)
    from lorarar import data_parallel

    if data_parallel.state().is_main_process:  # one report under accelerate launch / torchrun
        print(json.dumps({k: v for k, v in facts.items() if k != "history"}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from lorarar.world.evaluate import RESULTS, check_methods, evaluate

    default = "direct,hypernet" if args.bundle else "direct,ziplora,hypernet"
    methods = [m.strip() for m in (args.methods or default).split(",") if m.strip()]
    check_methods(methods, args.bundle)
    report = evaluate(
        args.split,
        methods,
        args.n,
        args.seed,
        args.hypernet,
        args.judge,
        args.judge_model,
        args.pairs,
        out_dir=args.out or RESULTS,
        bundle=args.bundle,
    )
    if args.json:
        print(json.dumps(report["summary"]))
    else:
        for method, summary in report["summary"].items():
            print(method, " ".join(f"{k}={_brief(v)}" for k, v in summary.items()))
    return 0


def _brief(value: object) -> str:
    """A summary value on one line: numbers to 4 digits, intervals as [low, high], names as they are."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return "n/a" if value is None else str(value)
