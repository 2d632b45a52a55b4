"""Writes the fuzzer's seed files: small LoRAs in each supported format and column-coefficient files (run once; the
outputs are committed)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).parent / "corpus"
Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
K = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(0)
    r = 2

    def pair(inp: int, out: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(r, inp, generator=g).to(dtype), torch.randn(out, r, generator=g).to(dtype))

    a, b = pair(8, 8)
    c, d = pair(12, 8, torch.float16)
    meta = {"lora_adapter_metadata": json.dumps({"unet.lora_alpha": 4, "unet.alpha_pattern": {"attn2.to_k": 1}})}
    save_file(
        {
            f"unet.{Q}.lora_A.weight": a,
            f"unet.{Q}.lora_B.weight": b,
            f"unet.{K}.lora_A.weight": c,
            f"unet.{K}.lora_B.weight": d,
        },
        str(OUT / "peft.safetensors"),
        metadata=meta,
    )
    save_file(
        {f"unet.unet.{Q}.lora.down.weight": a, f"unet.unet.{Q}.lora.up.weight": b}, str(OUT / "legacy.safetensors")
    )
    kq = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    save_file(
        {
            f"{kq}.lora_down.weight": a.bfloat16(),
            f"{kq}.lora_up.weight": b.bfloat16(),
            f"{kq}.alpha": torch.tensor(1.0),
            "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(1, 2),
        },
        str(OUT / "kohya_sdxl.safetensors"),
    )
    ks = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_out_0"
    e, f = pair(16, 16)
    save_file(
        {f"{ks}.lora_down.weight": e, f"{ks}.lora_up.weight": f, f"{ks}.alpha": torch.tensor(2.0)},
        str(OUT / "kohya_sd1.safetensors"),
    )
    p = "up_blocks.0.attentions.1.proj_in"
    save_file(
        {
            f"base_model.model.{p}.lora_A.weight": e.reshape(r, 16, 1, 1),
            f"base_model.model.{p}.lora_B.weight": f.reshape(16, r, 1, 1),
        },
        str(OUT / "peft_conv1x1.safetensors"),
    )
    # Column-coefficient files (lorarar_coeffs_load) for the fuzz target's own LoRA pair, on Q
    # (8 columns) and K (12): one that merges, one whose K vectors have the wrong length.
    for name, k_columns in (("coefficients", 12), ("coefficients_short", 5)):
        save_file(
            {
                f"{Q}.content": torch.rand(8, generator=g),
                f"{Q}.style": torch.rand(8, generator=g),
                f"{K}.content": torch.rand(k_columns, generator=g),
                f"{K}.style": torch.rand(k_columns, generator=g),
            },
            str(OUT / f"{name}.safetensors"),
        )


if __name__ == "__main__":
    main()
