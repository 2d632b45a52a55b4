"""The VAE decoder converter: ``z`` (1, C, h, w), latents already divided by ``scaling_factor`` (the runtime divides)
-> ``image`` (1, 3, H, W) in [-1, 1] (clamped in the graph; the runtime maps it to 8-bit as (x + 1) * 127.5)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lorarar.export import graph_forms
from lorarar.export.program import Component, Method, TensorSpec


class VaeDecoderProgram(nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z, return_dict=False)[0].clamp(-1.0, 1.0)


def convert(vae: Any, latent_size: int, forms: tuple[str, ...] = graph_forms.FORMS) -> Component:
    if "classic-attention" in forms:
        graph_forms.use_classic_attention(vae)
    if "chunked-attention" in forms:
        graph_forms.use_chunked_attention(vae)
    if "float-residual-scale" in forms:
        graph_forms.use_float_residual_scales(vae)
    cfg = vae.config
    channels = int(cfg.latent_channels)
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    size = latent_size * factor
    z = TensorSpec("z", (1, channels, latent_size, latent_size))
    image = TensorSpec("image", (1, int(cfg.out_channels), size, size))
    example = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    # The encoder is not exported: keep only what decode() uses, so the program does not carry its weights.
    vae.encoder = None
    vae.quant_conv = None
    method = Method("forward", VaeDecoderProgram(vae).eval(), [z], [image], (example,))
    info = {
        "scaling_factor": float(cfg.scaling_factor),
        "shift_factor": getattr(cfg, "shift_factor", None),
        "params": sum(p.numel() for p in vae.parameters()),
    }
    return Component("vae_decoder", [method], list(forms), info)
