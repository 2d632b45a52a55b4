"""What several processes (torchrun / accelerate launch, lorarar.data_parallel) buy the world's base stage here.

Times each step of the base stage's UNet + text-encoder loop (``train_base.train_unet``, the stage's 79 minutes
out of 94: the committed BaseConfig, batch 24, bf16 autocast) on a synthetic dataset of the same shapes, on one
process and on ``--processes`` processes under torchrun, runs alternating (``--rounds`` of each, steps pooled) so
that the shared machine's drift hits both. A step's time is the interval between two steps starting (taken where
the loop sets the step's learning rate); each run's first ``--warmup`` steps are left out. Rows:
``train_parallel/base_step/<N>proc`` (seconds a step; for N > 1, ``vs`` the one-process median and ``speedup``).

    .venv/bin/python benchmarks/train_parallel.py [--processes 2] [--steps 40] [--warmup 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rows import stats


def run_steps(steps: int, out: Path) -> None:
    """The timed loop, in each process; the main one writes the step start times to out/times.json."""
    import numpy as np
    import torch
    from transformers import CLIPTokenizer

    from lorarar import data_parallel
    from lorarar.world import data
    from lorarar.world import train_base as tb
    from lorarar.world.tokenizer import write_tokenizer

    processes = data_parallel.state()
    with processes.main_process_first():
        if processes.is_main_process:
            write_tokenizer(out / "tokenizer")
        tokenizer = CLIPTokenizer.from_pretrained(out / "tokenizer")
    n = 256
    captions = [caption for _, caption in (data.base_example(0, i) for i in range(n))]
    g = torch.Generator().manual_seed(0)
    latents = (torch.randn(n, 4, 16, 16, generator=g).half(), torch.full((n, 4, 16, 16), 0.1).half(), 0.5)
    starts: list[float] = []
    lr_at = tb._lr_at

    def timed_lr_at(step: int, cfg: Any, total: int, base_lr: float) -> float:
        starts.append(time.perf_counter())
        return lr_at(step, cfg, total, base_lr)

    tb._lr_at = timed_lr_at  # called once at the start of each step
    cfg = tb.BaseConfig(unet_steps=steps, checkpoint_every=10**9)
    tb.train_unet(out / "work", tokenizer, data.Batch(np.zeros((n, 64, 64, 3), np.float32), captions), latents, cfg)
    if processes.is_main_process:
        (out / "times.json").write_text(json.dumps({"starts": starts, "processes": processes.num_processes}))


def measure(processes: int, steps: int, warmup: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        me = [str(Path(__file__).resolve()), "--worker", tmp, "--steps", str(steps)]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        cmd = [*launcher, *me] if processes > 1 else [sys.executable, *me]
        subprocess.run(cmd, check=True, capture_output=True)
        report = json.loads((Path(tmp) / "times.json").read_text())
        assert report["processes"] == processes
        starts = report["starts"]
        return [b - a for a, b in zip(starts[warmup:], starts[warmup + 1 :], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_steps(args.steps, args.worker)
        return
    one: list[float] = []
    several: list[float] = []
    for _ in range(args.rounds):
        one += measure(1, args.steps, args.warmup)
        several += measure(args.processes, args.steps, args.warmup)
    row = stats("train_parallel/base_step/1proc", "s", one, batch=24)
    print(json.dumps(row))
    many = stats(f"train_parallel/base_step/{args.processes}proc", "s", several, batch=24, vs=row["median"])
    many["speedup"] = round(row["median"] / many["median"], 3)
    print(json.dumps(many))


if __name__ == "__main__":
    main()
