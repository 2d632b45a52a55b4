"""Tiled VAE decoding: the latent cut into overlapping tiles of one fixed size, each decoded alone, blended.

A VAE decoder's activations grow with the image's area (SD 1.5 at 512x512: 640 MB of planned memory and a 718 MB
XNNPACK workspace for a 49 MB int8 program), so a phone decodes in tiles. An exported program has one input shape,
so unlike diffusers' ``enable_tiling`` (whose tiles at the right and bottom borders come out short) every tile here
has the program's shape: the tiles along an axis are spread evenly from one border to the other, each neighbouring
pair overlapping by at least ``overlap`` latent pixels. Each tile's pixels are weighted by a ramp that rises across
its overlap with the previous tile and falls across its overlap with the next (1 elsewhere and at the image's
borders), and the image is the weighted sum divided by the sum of weights, so any pixel, however many tiles cover
it, is a convex blend of them. A decoder whose output at a pixel depended only on nearby latents would therefore be
reproduced exactly; a real one's GroupNorm statistics are per tile, which is what the overlap blends away.

This is the PyTorch reference of the engine's tiled decode (runtime/core/tiling.h), used by ``--engine torch`` and
the parity tests; the geometry is fixed by the bundle (export/BUNDLE.md, "VAE tiling").
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_origins(size: int, tile: int, overlap: int) -> list[int]:
    """The first latent row (or column) of each tile along an axis of ``size``: the first at 0, the last at
    ``size - tile``, the rest spread evenly between (rounded down), every step at most ``tile - overlap``."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tile {tile} with overlap {overlap}: need tile >= 1 and 0 <= overlap < tile")
    if tile >= size:
        return [0]
    steps = -(-(size - tile) // (tile - overlap))  # ceil: the fewest steps of at most tile - overlap
    return [k * (size - tile) // steps for k in range(steps + 1)]


def tile_ramps(origins: list[int], tile: int, factor: int) -> list[torch.Tensor]:
    """Per tile, the weights of its ``tile * factor`` output pixels along the axis: linear across each overlap
    with a neighbour (pixel centres, so never 0), 1 elsewhere."""
    pixels = tile * factor
    centres = torch.arange(pixels, dtype=torch.float64) + 0.5
    ramps = []
    for k, origin in enumerate(origins):
        weight = torch.ones(pixels, dtype=torch.float64)
        if k > 0:
            weight = torch.minimum(weight, centres / ((origins[k - 1] + tile - origin) * factor))
        if k + 1 < len(origins):
            weight = torch.minimum(weight, (pixels - centres) / ((origin + tile - origins[k + 1]) * factor))
        ramps.append(weight)
    return ramps


def tiled_decode(
    decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, tile: int, overlap: int, factor: int
) -> torch.Tensor:
    """``decode`` (B, C, tile, tile) -> (B, 3, tile * factor, tile * factor), applied tile by tile over ``z``
    (B, C, H, W); returns (B, 3, H * factor, W * factor) in ``z``'s dtype. A tile of the latent's size is one
    plain ``decode``."""
    height, width = int(z.shape[2]), int(z.shape[3])
    if tile > min(height, width):
        raise ValueError(f"tile {tile} is larger than the latent ({height}x{width})")
    if (height, width) == (tile, tile):
        return decode(z)
    rows, cols = tile_origins(height, tile, overlap), tile_origins(width, tile, overlap)
    ramp_rows, ramp_cols = tile_ramps(rows, tile, factor), tile_ramps(cols, tile, factor)
    out: torch.Tensor | None = None
    total = torch.zeros(height * factor, width * factor, dtype=torch.float64)
    side = tile * factor
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            image = decode(z[:, :, y : y + tile, x : x + tile]).to(torch.float64)
            if tuple(image.shape[2:]) != (side, side):
                raise ValueError(f"decode gave a {tuple(image.shape)} tile, expected {side}x{side} pixels")
            if out is None:
                out = torch.zeros(z.shape[0], image.shape[1], height * factor, width * factor, dtype=torch.float64)
            weight = ramp_rows[i][:, None] * ramp_cols[j][None, :]
            ys, xs = slice(y * factor, y * factor + side), slice(x * factor, x * factor + side)
            out[:, :, ys, xs] += image * weight
            total[ys, xs] += weight
    assert out is not None
    return (out / total).to(z.dtype)
