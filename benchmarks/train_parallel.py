"""What several processes (torchrun / accelerate launch, lorarar.data_parallel) buy the training loops here.

Times each step of two loops, on one process and on ``--processes`` processes under torchrun, runs alternating
(``--rounds`` of each, steps pooled) so that the shared machine's drift hits both:
- ``base``: the base stage's UNet + text-encoder loop (``train_base.train_unet``, 79 of the stage's 94 minutes: the
  committed BaseConfig, batch 24, bf16 autocast) on a synthetic dataset of the same shapes; a step starts where the
  loop sets its learning rate;
- ``hypernet``: ``lorarar train-hypernet``'s loop (the committed recipe: ZipLoRA objective, 4 images a branch, on
  the default world); a step starts where it asks the hypernetwork for the pair's coefficients.
A step's time is the interval between two steps starting; each run's first ``--warmup`` steps are left out. Rows:
``train_parallel/<loop>_step/<N>proc`` (seconds a step; for N > 1, ``vs`` the one-process median and ``speedup``).

    .venv/bin/python benchmarks/train_parallel.py [--loops base,hypernet] [--processes 2] [--steps 40] [--warmup 5]
        [--rounds 2]
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


def base_steps(steps: int, out: Path) -> list[float]:
    """Start times of the base loop's steps."""
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
    return starts


def hypernet_steps(steps: int, out: Path) -> list[float]:
    """Start times of the hypernetwork loop's steps (its final validation, on 2 pairs, is not timed)."""
    from lorarar.hypernet import train as ht

    starts: list[float] = []
    coefficients = ht.hypernet_coefficients

    def timed_coefficients(*args: Any, **kwargs: Any) -> Any:
        starts.append(time.perf_counter())
        return coefficients(*args, **kwargs)

    ht.hypernet_coefficients = timed_coefficients  # once a step (the ZipLoRA objective), then once a val pair
    cfg = ht.HyperTrainConfig(steps=steps, val_every=10**9, val_pairs=2, checkpoint_every=10**9)
    ht.train_hypernet(out / "net", out / "work", cfg)
    return starts[:steps]


LOOPS = {"base": base_steps, "hypernet": hypernet_steps}


def run_steps(loop: str, steps: int, out: Path) -> None:
    """The timed loop, in each process; the main one writes the step start times to out/times.json."""
    from lorarar import data_parallel

    starts = LOOPS[loop](steps, out)
    processes = data_parallel.state()
    if processes.is_main_process:
        (out / "times.json").write_text(json.dumps({"starts": starts, "processes": processes.num_processes}))


def measure(loop: str, processes: int, steps: int, warmup: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        me = [str(Path(__file__).resolve()), "--worker", tmp, "--loops", loop, "--steps", str(steps)]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        cmd = [*launcher, *me] if processes > 1 else [sys.executable, *me]
        subprocess.run(cmd, check=True, capture_output=True)
        report = json.loads((Path(tmp) / "times.json").read_text())
        assert report["processes"] == processes
        starts = report["starts"]
        return [b - a for a, b in zip(starts[warmup:], starts[warmup + 1 :], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", default="base,hypernet", help=f"comma-separated, of {', '.join(LOOPS)}")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    loops = args.loops.split(",")
    if unknown := sorted(set(loops) - set(LOOPS)):
        ap.error(f"--loops: unknown {', '.join(unknown)} (known: {', '.join(LOOPS)})")
    if args.worker:
        run_steps(loops[0], args.steps, args.worker)
        return
    for loop in loops:
        one: list[float] = []
        several: list[float] = []
        for _ in range(args.rounds):
            one += measure(loop, 1, args.steps, args.warmup)
            several += measure(loop, args.processes, args.steps, args.warmup)
        row = stats(f"train_parallel/{loop}_step/1proc", "s", one)
        print(json.dumps(row), flush=True)
        many = stats(f"train_parallel/{loop}_step/{args.processes}proc", "s", several, vs=row["median"])
        many["speedup"] = round(row["median"] / many["median"], 3)
        print(json.dumps(many), flush=True)


if __name__ == "__main__":
    main()
