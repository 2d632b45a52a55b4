"""The UNet's LoRA slot: the exported UNet fed a folded adapter (native Adapter from real LoRA files) equals the eager
diffusers UNet with that LoRA fused into its weights; ranks below the slot's are zero-padded, ranks above refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export_helpers import fuse, read_lora, rel_err, write_lora
from lorarar import Adapter, LoraFile
from lorarar.export import executorch_backend, onnx_backend
from lorarar.export.errors import ExportError
from lorarar.export.hypernet import pack_inputs
from lorarar.export.lora_slot import SlotLayout
from lorarar.export.program import TensorSpec, random_inputs

TOL = 1e-4


@pytest.fixture(scope="module")
def eager_unet(tiny_pipeline: Path) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet")).eval()


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory, eager_unet: torch.nn.Module) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("slot-loras")
    return {
        "content": write_lora(eager_unet, d / "content.safetensors", rank=4, alpha=8.0, seed=1),
        "style": write_lora(eager_unet, d / "style.safetensors", rank=3, alpha=3.0, seed=2),
        "big": write_lora(eager_unet, d / "big.safetensors", rank=6, alpha=6.0, seed=3),
    }


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def unet_inputs(bundle: Path) -> tuple[torch.Tensor, ...]:
    m = manifest(bundle)["programs"]["unet"]["methods"]["forward"]
    sample, _t, ctx, _, _ = random_inputs([TensorSpec(i["name"], tuple(i["shape"])) for i in m["inputs"]], seed=7)
    return sample, torch.tensor([400.0, 400.0]), ctx


def eager_fused(
    unet: torch.nn.Module, deltas: dict[str, torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    import copy

    fused = copy.deepcopy(unet)
    fuse(fused, deltas)
    with torch.no_grad():
        return fused(*inputs).sample


def run_unet(bundle: Path, inputs: tuple[torch.Tensor, ...], a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    entry = manifest(bundle)["programs"]["unet"]
    path = bundle / entry["files"]["forward"]
    runner = executorch_backend.Runner(path) if path.suffix == ".pte" else onnx_backend.Runner(path)
    return runner(*inputs, torch.from_numpy(a), torch.from_numpy(b))[0]


@pytest.mark.parametrize("bundle_name", ["xnnpack_bundle", "onnx_bundle"])
def test_direct_merge_equals_fused(
    bundle_name: str, request: pytest.FixtureRequest, eager_unet: torch.nn.Module, loras: dict[str, Path]
) -> None:
    """content rank 4 (alpha 8) + style rank 3 (alpha 3) = rank 7 in the rank-8 slot (one row of padding)."""
    bundle = request.getfixturevalue(bundle_name)
    layout = SlotLayout.from_json(manifest(bundle)["lora_slot"])
    adapter = Adapter.merge(
        LoraFile.load(str(loras["content"])), LoraFile.load(str(loras["style"])), "direct", 0.8, 1.2
    )
    a, b = layout.pack_adapter(adapter)
    c, s = read_lora(loras["content"], 8.0, 4), read_lora(loras["style"], 3.0, 3)
    deltas = {m: 0.8 * c[m][1] @ c[m][0] + 1.2 * s[m][1] @ s[m][0] for m in c}
    inputs = unet_inputs(bundle)
    ref = eager_fused(eager_unet, deltas, inputs)
    with torch.no_grad():
        base = eager_unet(*inputs).sample
    assert rel_err(base, ref) > 1e-2  # the adapter matters
    assert rel_err(run_unet(bundle, inputs, a, b), ref) < TOL


def test_hypernet_columns_merge_equals_fused(
    xnnpack_bundle: Path, eager_unet: torch.nn.Module, loras: dict[str, Path]
) -> None:
    """The whole on-device flow: hypernet program -> column coefficients -> native fold -> slot."""
    m = manifest(xnnpack_bundle)
    layout = SlotLayout.from_json(m["lora_slot"])
    content, style = LoraFile.load(str(loras["content"])), LoraFile.load(str(loras["style"]))
    hyper = m["programs"]["hypernet"]
    runner_path = xnnpack_bundle / hyper["files"][next(iter(hyper["methods"]))]
    coefficients: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Each shape comes at the ranks of the ladder (the pair is rank 4 and 3, the slot 8): every method that holds
    # the pair gives the same coefficients, zero padding being exact.
    assert sorted(method["rank"] for method in hyper["methods"].values()) == [4, 4, 8, 8]
    for name, method in sorted(hyper["methods"].items(), key=lambda item: -item[1]["rank"]):
        out = executorch_backend.Runner(runner_path, name)(*pack_inputs(method, method["rank"], content, style))[0]
        for i, module in enumerate(method["layers"]):
            if module in coefficients:
                np.testing.assert_allclose(out[i].numpy(), np.stack(coefficients[module]), rtol=1e-5, atol=1e-6)
            coefficients[module] = (out[i, 0].numpy().copy(), out[i, 1].numpy().copy())
    adapter = Adapter.merge(content, style, "columns", coefficients=coefficients)
    a, b = layout.pack_adapter(adapter)
    c, s = read_lora(loras["content"], 8.0, 4), read_lora(loras["style"], 3.0, 3)
    deltas = {}
    for mod in c:
        mc, ms = (torch.from_numpy(x) for x in coefficients[mod]) if mod in coefficients else (1.0, 1.0)
        deltas[mod] = c[mod][1] @ (c[mod][0] * mc) + s[mod][1] @ (s[mod][0] * ms)
    inputs = unet_inputs(xnnpack_bundle)
    assert rel_err(run_unet(xnnpack_bundle, inputs, a, b), eager_fused(eager_unet, deltas, inputs)) < TOL


def test_single_lora_padding(xnnpack_bundle: Path, eager_unet: torch.nn.Module, loras: dict[str, Path]) -> None:
    """A rank-3 LoRA alone: five rows of zeros per layer."""
    layout = SlotLayout.from_json(manifest(xnnpack_bundle)["lora_slot"])
    a, b = layout.pack_adapter(Adapter.single(LoraFile.load(str(loras["style"]))))
    s = read_lora(loras["style"], 3.0, 3)
    inputs = unet_inputs(xnnpack_bundle)
    ref = eager_fused(eager_unet, {m: s[m][1] @ s[m][0] for m in s}, inputs)
    assert rel_err(run_unet(xnnpack_bundle, inputs, a, b), ref) < TOL


def test_rank_above_slot_is_an_error(xnnpack_bundle: Path, loras: dict[str, Path]) -> None:
    layout = SlotLayout.from_json(manifest(xnnpack_bundle)["lora_slot"])
    adapter = Adapter.merge(LoraFile.load(str(loras["content"])), LoraFile.load(str(loras["big"])), "direct")
    with pytest.raises(ExportError, match=r"adapter rank 10 exceeds the slot's max rank 8 \(export with --max-rank 10"):
        layout.pack_adapter(adapter, "merge")


def test_unknown_layer_is_an_error(xnnpack_bundle: Path) -> None:
    layout = SlotLayout.from_json(manifest(xnnpack_bundle)["lora_slot"])
    bogus = {"down_blocks.0.resnets.0.conv1": (np.zeros((2, 4), np.float32), np.zeros((4, 2), np.float32))}
    with pytest.raises(ExportError, match="is not a LoRA slot of this bundle"):
        layout.pack(bogus)


def test_slot_layout_in_manifest(xnnpack_bundle: Path, eager_unet: torch.nn.Module) -> None:
    from lorarar.export.lora_slot import find_targets

    slot = manifest(xnnpack_bundle)["lora_slot"]
    targets = find_targets(eager_unet)
    assert [(layer["module"], layer["in_features"], layer["out_features"]) for layer in slot["layers"]] == targets
    a = b = 0
    for layer in slot["layers"]:
        assert (layer["a_offset"], layer["b_offset"], layer["rank"]) == (a, b, 8)
        a += 8 * layer["in_features"]
        b += 8 * layer["out_features"]
    assert slot["inputs"] == {"lora_a": a, "lora_b": b}
    inputs = manifest(xnnpack_bundle)["programs"]["unet"]["methods"]["forward"]["inputs"]
    assert [(t["name"], t["shape"]) for t in inputs[3:]] == [("lora_a", [a]), ("lora_b", [b])]
