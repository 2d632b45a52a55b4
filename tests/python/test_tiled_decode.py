"""Tiled VAE decoding's reference (lorarar.tiled_decode): geometry, blend, and the exactness a local decoder allows.

The native engine's tiled decode (runtime/core/tiling.h) is held to this reference by
tests/python/test_engine.py::test_tiled_decoding_matches_reference; its geometry by tests/native/test_tiling.cc,
which checks the same origin lists as below.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from lorarar.export.errors import ExportError
from lorarar.export.vae_decoder import tiling_of
from lorarar.tiled_decode import tile_origins, tile_ramps, tiled_decode


def test_origins_match_the_native_cases() -> None:
    assert tile_origins(64, 32, 8) == [0, 16, 32]
    assert tile_origins(64, 40, 10) == [0, 24]
    assert tile_origins(15, 8, 2) == [0, 3, 7]
    assert tile_origins(16, 16, 0) == [0]
    assert tile_origins(16, 20, 4) == [0]
    assert tile_origins(17, 16, 0) == [0, 1]


@pytest.mark.parametrize(("size", "tile", "overlap"), [(64, 32, 8), (50, 7, 3), (33, 32, 31), (9, 2, 1)])
def test_origins_span_the_axis_with_the_least_overlap(size: int, tile: int, overlap: int) -> None:
    origins = tile_origins(size, tile, overlap)
    assert origins[0] == 0 and origins[-1] == size - tile
    steps = [b - a for a, b in itertools.pairwise(origins)]
    assert all(0 < s <= tile - overlap for s in steps)
    assert (len(origins) - 2) * (tile - overlap) < size - tile  # no fewer tiles could span it


def test_ramps_are_a_partition_of_unity_where_two_tiles_meet() -> None:
    origins = tile_origins(20, 8, 2)
    assert origins == [0, 6, 12]
    ramps = tile_ramps(origins, 8, 4)
    total = torch.zeros(80, dtype=torch.float64)
    for origin, ramp in zip(origins, ramps, strict=True):
        assert bool((ramp > 0).all())
        total[origin * 4 : origin * 4 + 32] += ramp
    assert torch.allclose(total, torch.ones(80, dtype=torch.float64))
    assert ramps[1][0].item() == pytest.approx(0.5 / 8)
    assert ramps[0][0].item() == 1.0 and ramps[-1][-1].item() == 1.0  # the image's borders are not faded


def _upsample(z: torch.Tensor) -> torch.Tensor:
    """A decoder whose pixels each depend on one latent: tiling cannot change its output."""
    return torch.nn.functional.interpolate(z[:, :3] * 0.7 - 0.1, scale_factor=4, mode="nearest")


@pytest.mark.parametrize(("shape", "tile", "overlap"), [((16, 16), 8, 2), ((15, 21), 8, 3), ((9, 9), 4, 3)])
def test_a_local_decoder_is_reproduced_exactly(shape: tuple[int, int], tile: int, overlap: int) -> None:
    z = torch.randn(2, 4, *shape, generator=torch.Generator().manual_seed(0))
    tiled = tiled_decode(_upsample, z, tile, overlap, 4)
    assert tiled.shape == (2, 3, shape[0] * 4, shape[1] * 4)
    torch.testing.assert_close(tiled, _upsample(z), rtol=0, atol=1e-6)


def test_a_decoder_with_context_differs_only_near_the_seams() -> None:
    """A 3x3 convolution sees zero padding at a tile's edge: the blend keeps the error small and local."""
    conv = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)
    torch.nn.init.constant_(conv.weight, 1 / 27)

    def decode(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return conv(_upsample(z))

    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    error = (tiled_decode(decode, z, 8, 2, 4) - decode(z)).abs()
    assert error.max().item() > 1e-3  # the seams are real ...
    # ... and absent where only the first tile (latent 0..8, the next starting at 4) covers the image
    assert error[..., :16, :16].max().item() == 0.0
    assert error.mean().item() < 0.01


def test_a_tile_of_the_whole_latent_is_one_decode() -> None:
    calls: list[tuple[int, ...]] = []

    def decode(z: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(z.shape))
        return _upsample(z)

    z = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(tiled_decode(decode, z, 8, 2, 4), _upsample(z))
    assert calls == [(1, 4, 8, 8)]
    with pytest.raises(ValueError, match=r"tile 9 is larger than the latent \(8x8\)"):
        tiled_decode(decode, z, 9, 2, 4)
    with pytest.raises(ValueError, match="need tile >= 1 and 0 <= overlap < tile"):
        tile_origins(8, 4, 4)


def test_export_options_become_the_manifests_tiling() -> None:
    assert tiling_of(None, None, 64) is None
    assert tiling_of(32, None, 64) == {"tile": 32, "overlap": 8}  # a quarter of the tile, as diffusers overlaps
    assert tiling_of(40, 12, 64) == {"tile": 40, "overlap": 12}
    assert tiling_of(64, None, 64) is None  # the whole latent: no tiling
    with pytest.raises(ExportError, match=r"^--vae-tile: 65 is outside 1\.\.64 \(the latent's side\)$"):
        tiling_of(65, None, 64)


def test_the_torch_engine_reads_the_bundles_tiling(tmp_path: Path) -> None:
    import json

    from lorarar.errors import LoraError
    from lorarar.pipeline import bundle_vae_tiling

    def bundle(vae: dict[str, object]) -> Path:
        doc = {"format": "lorarar-bundle", "format_version": 1, "programs": {"vae_decoder": vae}}
        (tmp_path / "manifest.json").write_text(json.dumps(doc))
        return tmp_path

    assert bundle_vae_tiling(bundle({})) is None
    assert bundle_vae_tiling(bundle({"tiling": {"tile": 28, "overlap": 7}})) == (28, 7)
    with pytest.raises(LoraError) as error:
        bundle_vae_tiling(bundle({"tiling": {"tile": 28}}))
    assert str(error.value) == f"{tmp_path / 'manifest.json'}: programs.vae_decoder.tiling is not {{tile, overlap}}"
