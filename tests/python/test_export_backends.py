"""Quantized XNNPACK programs (parity within a stated bound) and the backends that only lower here (Core ML, and
ExecuTorch's Core ML / QNN / Vulkan partitioners where they work on Linux): lowering succeeds and the manifest says
the programs do not run on this host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from export_helpers import rel_err
from lorarar.export import executorch_backend, manifest
from lorarar.export.program import TensorSpec, random_inputs

# int8 bounds on the tiny random UNet (relative L2 error of noise_pred vs fp32 eager); see export/README.md.
INT8_BOUND = {"int8": 0.05, "w8a8": 0.15}
# Open problem (issue 5), shared by the accuracy and the size test.
W8A8_OPEN = pytest.param(
    "w8a8",
    marks=pytest.mark.xfail(
        strict=True,
        reason="open: the static W8A8 UNet misses its accuracy bound and is not smaller than fp32 on the "
        "tiny UNet (measured 2026-11-27); not yet investigated",
    ),
)


@pytest.mark.parametrize(
    "quant",
    [
        "int8",
        W8A8_OPEN,
    ],
)
def test_quantized_unet(quant: str, export_bundle_factory: Callable[..., Path], tiny_pipeline: Path) -> None:
    from diffusers import UNet2DConditionModel

    bundle = export_bundle_factory("xnnpack", quant, ("unet",))
    m = manifest.verify(bundle)
    unet = m["programs"]["unet"]
    assert unet["quantization"] == quant and m["quantization"]["mode"] == quant
    specs = [TensorSpec(t["name"], tuple(t["shape"])) for t in unet["methods"]["forward"]["inputs"]]
    sample, _, ctx, a, b = random_inputs(specs, seed=5)
    t = torch.tensor([500.0, 500.0])
    eager = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet")).eval()
    with torch.no_grad():
        ref = eager(sample, t, ctx).sample
    (out,) = executorch_backend.Runner(bundle / "unet.pte")(sample, t, ctx, torch.zeros_like(a), torch.zeros_like(b))
    assert rel_err(out, ref) < INT8_BOUND[quant]


@pytest.mark.parametrize(
    "quant",
    [
        pytest.param(
            "int8",
            marks=pytest.mark.xfail(
                strict=True,
                reason="open: the int8 (dynamic, Linear-only) UNet .pte is not smaller than fp32 on the tiny UNet "
                "(876 KB vs 813 KB of fp32 weights, measured 2026-11-27); not yet investigated",
            ),
        ),
        W8A8_OPEN,
    ],
)
def test_quantized_unet_is_smaller(quant: str, export_bundle_factory: Callable[..., Path], tiny_pipeline: Path) -> None:
    from diffusers import UNet2DConditionModel

    bundle = export_bundle_factory("xnnpack", quant, ("unet",))
    eager = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet"))
    assert (bundle / "unet.pte").stat().st_size < 0.6 * sum(p.numel() * 4 for p in eager.parameters())


def test_coreml_mlpackage(export_bundle_factory: Callable[..., Path]) -> None:
    bundle = export_bundle_factory("coreml", "int8", ("unet", "hypernet"))
    m = manifest.verify(bundle)
    assert m["backend"]["runs_on_host"] is False and "macOS" in m["backend"]["devices"]
    unet = m["programs"]["unet"]
    assert unet["files"] == {"forward": "Unet.mlpackage"} and (bundle / "Unet.mlpackage" / "Manifest.json").exists()
    names = [t["name"] for t in unet["coreml_io"]["forward"]["inputs"]]
    assert names == ["sample", "timestep", "encoder_hidden_states", "lora_a", "lora_b"]
    assert [t["name"] for t in unet["coreml_io"]["forward"]["outputs"]] == ["noise_pred"]
    assert all(f.startswith(("Unet.mlpackage/", "HyperNet_", "scheduler/", "tokenizer/")) for f in m["files"])


@pytest.mark.parametrize("backend", ["executorch-coreml"])
def test_executorch_device_partitioners(backend: str, export_bundle_factory: Callable[..., Path]) -> None:
    bundle = export_bundle_factory(backend, "none", ("unet",))
    m = manifest.verify(bundle)
    assert m["backend"]["runs_on_host"] is False
    assert m["programs"]["unet"]["delegation"]["forward"]["delegates"] >= 1
    assert json.loads((bundle / "manifest.json").read_text())["backend"]["partitioner"] == backend.split("-")[1]
