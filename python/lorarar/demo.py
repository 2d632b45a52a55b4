"""``make demo``: the engine's main job on what this checkout has.

Until the embedded default world (a trained model family and LoRA library) lands, the demo walks the LoRA core
on a Stable-Diffusion-layout UNet it builds from a seed: write a content and a style LoRA as diffusers does, read
them natively, merge them, write the merge as a standard LoRA, fuse it into the UNet, and report each step's time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

OUT = Path("out/demo")


def build_inputs(out: Path) -> tuple[Path, Path, Path]:
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    config = dict(
        sample_size=16,
        layers_per_block=2,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    unet_dir = out / "unet"
    UNet2DConditionModel(**config).save_pretrained(unet_dir)
    paths = []
    for name, rank, seed in (("content", 4, 1), ("style", 8, 2)):
        unet = UNet2DConditionModel(**config)
        torch.manual_seed(seed)
        unet.add_adapter(
            LoraConfig(
                r=rank,
                lora_alpha=rank,
                target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                init_lora_weights="gaussian",
            )
        )
        for module in unet.modules():
            if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {}):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
        StableDiffusionLoraLoaderMixin.save_lora_weights(out / name, unet_lora_layers=get_peft_model_state_dict(unet))
        paths.append(out / name / "pytorch_lora_weights.safetensors")
    return unet_dir, paths[0], paths[1]


def main() -> None:
    from lorarar.cli.main import main as cli

    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    unet_dir, content, style = build_inputs(OUT)
    print(f"built a SD-layout UNet and two LoRAs in {time.perf_counter() - start:.1f} s under {OUT}/")
    steps = [
        ["lora", "info", str(content), "--base", str(unet_dir)],
        [
            "merge",
            "--content",
            str(content),
            "--style",
            str(style),
            "--base",
            str(unet_dir),
            "--content-scale",
            "1.0",
            "--style-scale",
            "0.8",
            "--out",
            str(OUT / "merged.safetensors"),
        ],
        ["fuse", "--base", str(unet_dir), "--lora", str(OUT / "merged.safetensors"), "--out", str(OUT / "unet_fused")],
    ]
    for args in steps:
        print("$ lorarar " + " ".join(args))
        if args[:2] == ["lora", "info"]:
            args = [*args, "--json"]
            from contextlib import redirect_stdout
            from io import StringIO

            buf = StringIO()
            with redirect_stdout(buf):
                code = cli(args)
            info = json.loads(buf.getvalue())
            print(f"  {info['format']}: {len(info['layers'])} layers, rank {info['layers'][0]['rank']}")
        else:
            code = cli(args)
        if code != 0:
            raise SystemExit(code)


if __name__ == "__main__":
    main()
