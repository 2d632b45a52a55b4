"""The VAE decoder converter: ``z`` (1, C, h, w), latents already divided by ``scaling_factor`` (the runtime divides)
-> ``image`` (1, 3, H, W) in [-1, 1] (clamped in the graph; the runtime maps it to 8-bit as (x + 1) * 127.5).

With a tile size the program decodes one (tile x tile) latent tile, and the runtime decodes the latent tile by tile
and blends (lorarar.tiled_decode; export/BUNDLE.md, "VAE tiling"): the decoder's activations then take the tile's
area, not the image's."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lorarar.export import graph_forms
from lorarar.export.errors import ExportError
from lorarar.export.program import Component, Method, TensorSpec


class VaeDecoderProgram(nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z, return_dict=False)[0].clamp(-1.0, 1.0)


def default_overlap(tile: int) -> int:
    """A quarter of the tile, as diffusers' tiling overlaps (``tile_overlap_factor`` 0.25)."""
    return tile // 4


def tiling_of(tile: int | None, overlap: int | None, latent_size: int) -> dict[str, int] | None:
    """The manifest's ``tiling`` for ``--vae-tile`` / ``--vae-tile-overlap`` (None: decode the whole latent at
    once, also when the tile is the whole latent). Raises ExportError naming the option."""
    if tile is None:
        if overlap is not None:
            raise ExportError("--vae-tile-overlap: needs --vae-tile")
        return None
    overlap = default_overlap(tile) if overlap is None else overlap
    if not 1 <= tile <= latent_size:
        raise ExportError(f"--vae-tile: {tile} is outside 1..{latent_size} (the latent's side)")
    if not 0 <= overlap < tile:
        raise ExportError(f"--vae-tile-overlap: {overlap} is outside 0..{tile - 1} (below the tile's side)")
    return {"tile": tile, "overlap": overlap} if tile < latent_size else None


def convert(
    vae: Any, latent_size: int, forms: tuple[str, ...] = graph_forms.FORMS, tiling: dict[str, int] | None = None
) -> Component:
    """``tiling`` (from ``tiling_of``): the program decodes one tile of that side instead of the whole latent."""
    if "classic-attention" in forms:
        graph_forms.use_classic_attention(vae)
    if "chunked-attention" in forms:
        graph_forms.use_chunked_attention(vae)
    if "float-residual-scale" in forms:
        graph_forms.use_float_residual_scales(vae)
    cfg = vae.config
    channels = int(cfg.latent_channels)
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    side = tiling["tile"] if tiling else latent_size
    size = side * factor
    z = TensorSpec("z", (1, channels, side, side))
    image = TensorSpec("image", (1, int(cfg.out_channels), size, size))
    example = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    # The encoder is not exported: keep only what decode() uses, so the program does not carry its weights.
    vae.encoder = None
    vae.quant_conv = None
    method = Method("forward", VaeDecoderProgram(vae).eval(), [z], [image], (example,))
    info: dict[str, Any] = {
        "scaling_factor": float(cfg.scaling_factor),
        "shift_factor": getattr(cfg, "shift_factor", None),
        "params": sum(p.numel() for p in vae.parameters()),
    }
    if tiling:
        info["tiling"] = tiling
    return Component("vae_decoder", [method], list(forms), info)
