"""Merges: the native fold against the PyTorch reference and against diffusers' multi-adapter fuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lorarar import Adapter, LoraFile
from lorarar._native import save_coefficients
from lorarar.cli.main import main
from lorarar.merge import reference
from oracle import fused_weights, load_safetensors_dir


@pytest.mark.parametrize("engine", ["native", "torch"])
def test_direct_merge_file_equals_diffusers_set_adapters(
    engine: str, unet_dir: Path, lora_files: dict[str, Path], tmp_path: Path
) -> None:
    merged = tmp_path / "merged.safetensors"
    assert (
        main(
            [
                "merge",
                "--content",
                str(lora_files["content"]),
                "--style",
                str(lora_files["style"]),
                "--content-scale",
                "0.8",
                "--style-scale",
                "0.6",
                "--engine",
                engine,
                "--out",
                str(merged),
            ]
        )
        == 0
    )
    # Loaded back by diffusers, the merged file equals diffusers' own weighted two-adapter fuse.
    got = fused_weights(unet_dir, [(merged, 1.0)])
    want = fused_weights(unet_dir, [(lora_files["content"], 0.8), (lora_files["style"], 0.6)])
    base = load_safetensors_dir(unet_dir)
    worst = max(float((got[k] - want[k]).abs().max()) for k in base)
    assert worst <= 1e-5
    # The style LoRA alone touches to_k/to_v: rank 8 there, 4 + 8 on to_q/to_out.0.
    ranks = {
        layer.name.rsplit(".", 1)[-1] if "to_out" not in layer.name else "to_out.0": layer.rank
        for layer in LoraFile.load(str(merged)).layers
    }
    assert ranks == {"to_q": 12, "to_out.0": 12, "to_k": 8, "to_v": 8}


def random_coefficients(lora: LoraFile, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        layer.name: (
            rng.normal(size=layer.in_features).astype(np.float32),
            rng.normal(size=layer.in_features).astype(np.float32),
        )
        for layer in lora.layers
        if layer.name.endswith(("to_q", "to_out.0"))
    }


def test_column_merge_equals_reference_and_definition(lora_files: dict[str, Path]) -> None:
    content = LoraFile.load(str(lora_files["content"]))
    style = LoraFile.load(str(lora_files["style"]))
    coeffs = random_coefficients(content, 0)
    adapter = Adapter.merge(content, style, "columns", 1.0, 1.0, coeffs)
    folded = reference.fold(
        reference.read_factors(content),
        reference.read_factors(style),
        coefficients={k: (torch.from_numpy(c), torch.from_numpy(s)) for k, (c, s) in coeffs.items()},
    )
    assert sorted(folded) == [name for name, *_ in adapter.layers]
    for name, (down, up) in folded.items():
        a, b = adapter.materialize(name)
        np.testing.assert_allclose(a, down.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b, up.numpy(), rtol=0, atol=0)
    # dW from the definition: (s_c B_c A_c) diag(m_c) + (s_s B_s A_s) diag(m_s).
    name = next(iter(coeffs))
    (ac, bc), (as_, bs) = content.factors(name), style.factors(name)
    sc = next(layer.scale for layer in content.layers if layer.name == name)
    ss = next(layer.scale for layer in style.layers if layer.name == name)
    mc, ms = coeffs[name]
    want = sc * (bc.astype(np.float64) @ ac) * mc[None, :] + ss * (bs.astype(np.float64) @ as_) * ms[None, :]
    a, b = adapter.materialize(name)
    np.testing.assert_allclose(b.astype(np.float64) @ a, want, rtol=1e-5, atol=1e-6)


def test_column_merge_cli_engines_agree(lora_files: dict[str, Path], tmp_path: Path) -> None:
    content = LoraFile.load(str(lora_files["content"]))
    coeffs_file = tmp_path / "coeffs.safetensors"
    save_coefficients(random_coefficients(content, 1), str(coeffs_file))
    outs = {}
    for engine in ("native", "torch"):
        outs[engine] = tmp_path / f"{engine}.safetensors"
        assert (
            main(
                [
                    "merge",
                    "--content",
                    str(lora_files["content"]),
                    "--style",
                    str(lora_files["style"]),
                    "--method",
                    "columns",
                    "--coeffs",
                    str(coeffs_file),
                    "--engine",
                    engine,
                    "--out",
                    str(outs[engine]),
                ]
            )
            == 0
        )
    native, torch_ = (LoraFile.load(str(p)) for p in outs.values())
    for layer in native.layers:
        for x, y in zip(native.factors(layer.name), torch_.factors(layer.name), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_fuse_into_array_matches_reference(lora_files: dict[str, Path]) -> None:
    content = LoraFile.load(str(lora_files["content"]))
    style = LoraFile.load(str(lora_files["style"]))
    adapter = Adapter.merge(content, style, "direct", 0.5, 1.5)
    name, _rank, n_in, n_out = adapter.layers[0]
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float16):
        w = rng.normal(size=(n_out, n_in)).astype(dtype)
        want = reference.fuse(torch.from_numpy(w.copy()), *map(torch.from_numpy, adapter.materialize(name)), 0.25)
        adapter.fuse_into(name, w, 0.25)
        tol = 1e-6 if dtype == np.float32 else 1e-3
        np.testing.assert_allclose(w.astype(np.float64), want.double().numpy(), rtol=tol, atol=tol)


def test_hypernet_coefficients_batched_equal_layer_by_layer(lora_files: dict[str, Path]) -> None:
    """The merge's hypernetwork call (layers of one shape batched, ranks 4 and 8 zero-padded to 8) gives each layer
    what the low-rank form gives it alone, and what the naive form over dense dW columns gives."""
    from lorarar.export.hypernet import random_hypernet
    from lorarar.merge.methods import hypernet_coefficients

    content, style = LoraFile.load(str(lora_files["content"])), LoraFile.load(str(lora_files["style"]))
    fc, fs = reference.read_factors(content), reference.read_factors(style)
    merged = sorted(n for n in set(fc) & set(fs) if n.endswith(("to_q", "to_out.0")))
    net = random_hypernet([fc[n].up.shape[0] for n in merged], seed=5)
    ours = hypernet_coefficients(net, content, style)
    assert sorted(ours) == merged and {fc[n].down.shape[0] for n in merged} == {4}
    assert {fs[n].down.shape[0] for n in merged} == {8}
    with torch.no_grad():
        for name in merged:
            c, s = fc[name], fs[name]
            alone = net.forward_lowrank(c.down * c.scale, c.up, s.down * s.scale, s.up)
            dense = torch.cat([c.scale * c.up @ c.down, s.scale * s.up @ s.down], dim=0).T  # (in, 2 out)
            first = net.inputs[str(c.up.shape[0])]
            naive = net.output(torch.relu(first(dense))).T  # (2, in)
            for which in (0, 1):
                np.testing.assert_allclose(ours[name][which], alone[which].numpy(), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(ours[name][which], naive[which].numpy(), rtol=1e-4, atol=1e-5)


def test_peft_cat_merge_file_equals_diffusers_set_adapters(
    unet_dir: Path, lora_files: dict[str, Path], tmp_path: Path
) -> None:
    """peft's concatenation, written through the native engine, is the weighted sum diffusers fuses (ranks 4 and 8,
    alphas 4 and 8, a layer set only the style LoRA has)."""
    merged = tmp_path / "cat.safetensors"
    args = ["merge", "--method", "peft-cat", "--content-scale", "0.8", "--style-scale", "0.6", "--out", str(merged)]
    assert main([*args, "--content", str(lora_files["content"]), "--style", str(lora_files["style"])]) == 0
    got = fused_weights(unet_dir, [(merged, 1.0)])
    want = fused_weights(unet_dir, [(lora_files["content"], 0.8), (lora_files["style"], 0.6)])
    worst = max(float((got[k] - want[k]).abs().max()) for k in load_safetensors_dir(unet_dir))
    assert worst <= 1e-5


def ties_by_definition(deltas: list[np.ndarray], weights: list[float], density: float, rank: int) -> np.ndarray:
    """TIES (Yadav et al., 2023) written out: keep each delta's top `density` entries by magnitude, elect the sign of
    their sum, average the weighted entries that agree with it; then the best rank-`rank` approximation (SVD)."""
    trimmed = []
    for d in deltas:
        keep = np.argsort(np.abs(d).ravel())[-int(density * d.size) :]
        t = np.zeros(d.size, np.float64)
        t[keep] = d.ravel()[keep]
        trimmed.append(t.reshape(d.shape))
    stacked = np.stack(trimmed)
    agree = np.sign(stacked) == np.where(stacked.sum(0) >= 0, 1, -1)
    weighted = stacked * np.asarray(weights)[:, None, None]
    merged = (weighted * agree).sum(0) / np.maximum(agree.sum(0), 1)
    u, s, vt = np.linalg.svd(merged)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def test_peft_ties_merge_is_ties_by_definition(lora_files: dict[str, Path]) -> None:
    from lorarar.merge.methods import merge
    from lorarar.merge.peft_merge import PEFT_METHODS

    content, style = LoraFile.load(str(lora_files["content"])), LoraFile.load(str(lora_files["style"]))
    fc, fs = reference.read_factors(content), reference.read_factors(style)
    adapter, _ = merge(content, style, "peft-ties", content_scale=0.8, style_scale=0.6)
    density = PEFT_METHODS["peft-ties"][1]
    assert density is not None and sorted(name for name, *_ in adapter.layers) == sorted(set(fc) | set(fs))
    for name, rank, *_ in adapter.layers:
        assert rank == 12  # the sum of the ranks: the SVD keeps what the merged delta has up to that rank
        parts = [(f, w) for f, w in ((fc.get(name), 0.8), (fs.get(name), 0.6)) if f is not None]
        deltas = [(f.scale * f.up @ f.down).double().numpy() for f, _ in parts]
        want = ties_by_definition(deltas, [w for _, w in parts], density, rank)
        a, b = adapter.materialize(name)
        np.testing.assert_allclose(b @ a, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_peft_dare_merge_is_seeded_and_drops_entries(lora_files: dict[str, Path]) -> None:
    from lorarar.merge.peft_merge import peft_merge

    content, style = LoraFile.load(str(lora_files["content"])), LoraFile.load(str(lora_files["style"]))
    cat = peft_merge(content, style, "peft-cat")
    runs = [peft_merge(content, style, "peft-dare", seed=seed) for seed in (3, 3, 4)]
    name = next(name for name, *_ in cat.layers if name.endswith("to_q"))
    products = [np.matmul(*reversed(r.materialize(name))) for r in runs]
    np.testing.assert_array_equal(products[0], products[1])
    assert not np.allclose(products[0], products[2])
    cat_delta = np.matmul(*reversed(cat.materialize(name)))
    assert np.linalg.norm(products[0] - cat_delta) > 0.1 * np.linalg.norm(cat_delta)


def test_merge_method_spec_carries_the_users_weights() -> None:
    from lorarar.errors import LoraError
    from lorarar.merge.methods import parse_method

    assert parse_method("direct") == ("direct", 1.0, 1.0)
    assert parse_method("peft-ties@1.5:0.5") == ("peft-ties", 1.5, 0.5)
    with pytest.raises(LoraError) as e:
        parse_method("direct@1")
    assert str(e.value) == "'direct@1': the weights are written NAME@WC:WS, two numbers (e.g. direct@1:0.7)"
    with pytest.raises(LoraError) as e:
        parse_method("ties")
    assert str(e.value).startswith("unknown merge method 'ties' (direct, columns, hypernet, ziplora, peft-cat, ")
