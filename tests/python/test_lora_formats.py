"""The native parser against diffusers' and peft's loaders: every format, fused by both engines, to 1e-5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lorarar import LoraError, LoraFile
from lorarar.cli.main import main
from oracle import fused_weights, load_safetensors_dir

FORMATS = ["peft", "peft-fp16", "peft-bf16", "legacy", "kohya-sd1", "kohya-sdxl", "peft-folder"]


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("engine", ["native", "torch"])
def test_fuse_matches_diffusers(
    fmt: str, engine: str, unet_dir: Path, lora_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "fused"
    assert (
        main(
            [
                "fuse",
                "--base",
                str(unet_dir),
                "--lora",
                str(lora_files[fmt]),
                "--scale",
                "0.7",
                "--engine",
                engine,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    want = fused_weights(unet_dir, [(lora_files[fmt], 0.7)])
    got = load_safetensors_dir(out)
    base = load_safetensors_dir(unet_dir)
    assert max_abs_diff(got, want) <= 1e-5
    # The LoRA really changed the weights it targets (and only those).
    changed = {k for k in base if not torch.equal(base[k], got[k])}
    assert changed and all(k.endswith(("to_q.weight", "to_out.0.weight")) for k in changed)
    assert json.loads((out / "config.json").read_text()) == json.loads((unet_dir / "config.json").read_text())


def test_double_unet_prefix_reads_like_legacy(lora_files: dict[str, Path]) -> None:
    plain = LoraFile.load(str(lora_files["legacy"]))
    doubled = LoraFile.load(str(lora_files["legacy-unet-unet"]))
    assert [layer.name for layer in plain.layers] == [layer.name for layer in doubled.layers]
    for layer in plain.layers:
        for x, y in zip(plain.factors(layer.name), doubled.factors(layer.name), strict=True):
            assert (x == y).all()


@pytest.mark.parametrize("fmt", ["kohya-sd1", "kohya-sdxl"])
def test_kohya_names_map_with_and_without_base(fmt: str, unet_dir: Path, lora_files: dict[str, Path]) -> None:
    from lorarar import BaseModel

    with_base = LoraFile.load(str(lora_files[fmt]), base=BaseModel.open(str(unet_dir)))
    without = LoraFile.load(str(lora_files[fmt]))
    assert [layer.name for layer in with_base.layers] == [layer.name for layer in without.layers]
    assert len(with_base.text_encoder_keys) == 2
    assert with_base.layers[0].alpha == (1.0 if fmt == "kohya-sd1" else 1.5)


def test_lora_info_json(lora_files: dict[str, Path], unet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lora", "info", str(lora_files["peft"]), "--base", str(unet_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "peft"
    layer = info["layers"][0]
    assert layer == {
        "name": "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
        "rank": 4,
        "alpha": 8.0,
        "scale": 2.0,
        "in_features": 16,
        "out_features": 16,
        "dtype": "F32",
    }
    assert len(info["layers"]) == 68  # to_q and to_out.0 of 34 attention blocks
    assert main(["lora", "info", str(lora_files["legacy"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["alpha"] == 3.0  # no alpha in file: alpha = rank


@pytest.mark.parametrize("fmt", FORMATS)
def test_from_bytes_reads_like_the_file(fmt: str, lora_files: dict[str, Path]) -> None:
    """An app's LoRA from memory (asset, download) parses exactly as from disk, config included."""
    path = lora_files[fmt]
    config = ""
    if path.is_dir():
        config = (path / "adapter_config.json").read_text()
        path = path / "adapter_model.safetensors"
    from_file = LoraFile.load(str(lora_files[fmt]))
    from_bytes = LoraFile.from_bytes(path.read_bytes(), "asset:lora", config)
    assert from_bytes.path == "asset:lora"
    assert from_bytes.format == from_file.format
    assert [(x.name, x.rank, x.alpha, x.scale) for x in from_bytes.layers] == [
        (x.name, x.rank, x.alpha, x.scale) for x in from_file.layers
    ]
    for layer in from_file.layers:
        for x, y in zip(from_file.factors(layer.name), from_bytes.factors(layer.name), strict=True):
            assert (x == y).all()


def test_from_bytes_errors_name_the_given_name(lora_files: dict[str, Path]) -> None:
    data = lora_files["peft"].read_bytes()
    with pytest.raises(LoraError, match=r"^asset:lora: "):
        LoraFile.from_bytes(data[:100], "asset:lora")
    with pytest.raises(LoraError, match=r"^asset:lora \(adapter config\): not a JSON object$"):
        LoraFile.from_bytes(data, "asset:lora", "[]")
