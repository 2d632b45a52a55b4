"""Toy training runs that test_data_parallel.py runs twice: on one process (``python data_parallel_job.py MODE OUT``)
and on two under torchrun (``python -m torch.distributed.run --standalone --nproc_per_node 2 data_parallel_job.py
MODE OUT``).

Each writes what it trained into OUT (the main process, or each LoRA's owner): ``weights.pt`` and ``facts.json``.
Uneven batches (3 over 2 processes) on purpose: shards of 1 and 2 samples only give the global batch's gradient if
each shard's loss is weighted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def base(out: Path) -> None:
    from transformers import CLIPTokenizer

    from lorarar import data_parallel
    from lorarar.world import data
    from lorarar.world import train_base as tb
    from lorarar.world.tokenizer import write_tokenizer

    with data_parallel.state().main_process_first():
        if data_parallel.state().is_main_process:
            write_tokenizer(out / "tokenizer")
        tokenizer = CLIPTokenizer.from_pretrained(out / "tokenizer")
    g = torch.Generator().manual_seed(0)
    dataset = data.Batch(np.zeros((8, 64, 64, 3), np.float32), ["a sks bird", "a red cup", "a mug", "a zwz oak"] * 2)
    latents = (torch.randn(8, 4, 16, 16, generator=g).half(), torch.full((8, 4, 16, 16), 0.1).half(), 0.5)
    cfg = tb.BaseConfig(unet_steps=3, batch=3, warmup=1, checkpoint_every=1, mixed_precision="no", ema=0.5)
    initial = {}
    if data_parallel.state().is_main_process:
        # The weights before training (same seed as train_unet's), to measure how far training moved them.
        from diffusers import UNet2DConditionModel

        torch.manual_seed(cfg.seed + 1)
        initial = {f"unet.{k}": v.clone() for k, v in UNet2DConditionModel(**tb.UNET_CONFIG).state_dict().items()}
    unet, text = tb.train_unet(out / "work", tokenizer, dataset, latents, cfg)
    weights = {f"unet.{k}": v for k, v in unet.state_dict().items()} | {
        f"text.{k}": v for k, v in text.state_dict().items()
    }
    if data_parallel.state().is_main_process:
        torch.save({"weights": weights, "initial": initial}, out / "weights.pt")
        (out / "facts.json").write_text(json.dumps({"processes": data_parallel.state().num_processes}))


def hypernet(out: Path) -> None:
    from lorarar import data_parallel
    from lorarar.hypernet.train import HyperTrainConfig, train_hypernet

    cfg = HyperTrainConfig(steps=3, batch=3, val_every=3, val_pairs=3, checkpoint_every=1, mixed_precision="no")
    facts = train_hypernet(out / "net", out / "work", cfg)
    if data_parallel.state().is_main_process:
        (out / "facts.json").write_text(json.dumps(facts["history"]))


def loras(out: Path) -> None:
    from lorarar import data_parallel
    from lorarar.world import catalog
    from lorarar.world.train_lora import LoraConfig, train_loras

    paths = catalog.paths(out)
    if data_parallel.state().is_main_process and not paths.pipeline.exists():
        paths.pipeline.parent.mkdir(parents=True, exist_ok=True)
        paths.pipeline.symlink_to(catalog.paths().pipeline.resolve())
    data_parallel.state().wait_for_everyone()
    cfg = LoraConfig(content_steps=2, style_steps=2, content_images=2, mixed_precision="no")
    facts = train_loras(out, cfg, only=["pip", "wren", "ember"])
    if data_parallel.state().is_main_process:
        (out / "facts.json").write_text(json.dumps(facts["trained"]))


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    {"base": base, "hypernet": hypernet, "loras": loras}[mode](folder)
