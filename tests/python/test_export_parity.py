"""Every exported component against eager PyTorch (diffusers/transformers with their default attention), through
ExecuTorch's Python runtime (XNNPACK, fp32) and ONNX Runtime: within 1e-4 relative (L2 norm of the difference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from export_helpers import rel_err
from lorarar.export import executorch_backend, onnx_backend
from lorarar.export.hypernet import HyperNet
from lorarar.export.program import TensorSpec, random_inputs

TOL = 1e-4


def specs(bundle: Path, component: str, method: str = "forward") -> list[TensorSpec]:
    m = json.loads((bundle / "manifest.json").read_text())["programs"][component]["methods"][method]
    return [TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in m["inputs"]]


def run(bundle: Path, component: str, inputs: tuple[torch.Tensor, ...], method: str = "forward") -> list[torch.Tensor]:
    entry = json.loads((bundle / "manifest.json").read_text())["programs"][component]
    path = bundle / entry["files"][method]
    if path.suffix == ".pte":
        return executorch_backend.Runner(path, method)(*inputs)
    return onnx_backend.Runner(path)(*inputs)


BUNDLES = ["xnnpack_bundle", "onnx_bundle"]


@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_text_encoder(bundle_name: str, request: pytest.FixtureRequest, tiny_pipeline: Path) -> None:
    from transformers import CLIPTextModel

    bundle = request.getfixturevalue(bundle_name)
    (ids,) = random_inputs(specs(bundle, "text_encoder"), seed=1, high=300)
    eager = CLIPTextModel.from_pretrained(str(tiny_pipeline / "text_encoder")).eval()
    with torch.no_grad():
        ref = eager(ids).last_hidden_state
    (out,) = run(bundle, "text_encoder", (ids,))
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_unet_without_adapter(bundle_name: str, request: pytest.FixtureRequest, tiny_pipeline: Path) -> None:
    from diffusers import UNet2DConditionModel

    bundle = request.getfixturevalue(bundle_name)
    sample, t, ctx, a, b = random_inputs(specs(bundle, "unet"), seed=2)
    t = torch.tensor([999.0, 999.0])
    eager = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet")).eval()
    with torch.no_grad():
        ref = eager(sample, t, ctx).sample
    (out,) = run(bundle, "unet", (sample, t, ctx, torch.zeros_like(a), torch.zeros_like(b)))
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_vae_decoder(bundle_name: str, request: pytest.FixtureRequest, tiny_pipeline: Path) -> None:
    from diffusers import AutoencoderKL

    bundle = request.getfixturevalue(bundle_name)
    (z,) = random_inputs(specs(bundle, "vae_decoder"), seed=3)
    eager = AutoencoderKL.from_pretrained(str(tiny_pipeline / "vae")).eval()
    with torch.no_grad():
        ref = eager.decode(z).sample.clamp(-1, 1)
    (out,) = run(bundle, "vae_decoder", (z,))
    assert out.shape == (1, 3, 16, 16)
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_hypernet_methods(bundle_name: str, request: pytest.FixtureRequest, tiny_hypernet: Path) -> None:
    """Each method equals HyperNet.forward_lowrank layer by layer, zero padding included."""
    bundle = request.getfixturevalue(bundle_name)
    info = json.loads((bundle / "manifest.json").read_text())["programs"]["hypernet"]
    net = HyperNet.load(tiny_hypernet).eval()
    assert info["methods"]
    for name, method in info["methods"].items():
        down_c, up_c, down_s, up_s = random_inputs(specs(bundle, "hypernet", name), seed=4)
        down_s[:, 5:] = 0  # a style LoRA of rank 5 in the rank-8 slot
        up_s[:, :, 5:] = 0
        (out,) = run(bundle, "hypernet", (down_c, up_c, down_s, up_s), name)
        assert out.shape == (len(method["layers"]), 2, method["in_features"])
        with torch.no_grad():
            for i in range(out.shape[0]):
                ref = net.forward_lowrank(down_c[i], up_c[i], down_s[i, :5], up_s[i, :, :5])
                assert rel_err(out[i], ref) < TOL
