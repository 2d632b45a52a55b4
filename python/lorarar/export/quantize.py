"""Quantization for the ExecuTorch + XNNPACK programs (pt2e: annotate, calibrate, convert, re-export).

Modes:
- ``int8``: dynamic int8 activations with int8 per-channel symmetric weights on every Linear and (non-depthwise)
  Conv2d, run by XNNPACK's qd8 kernels (the slot's run-time factors stay fp32: they are inputs, not weights).
  World UNet: 24.0 MB -> 6.49 MB, 1.0% relative error on noise_pred, 1.5x faster a step than fp32 (2 threads).
- ``w8a8``: static 8-bit: int8 per-channel weights and per-tensor activations calibrated on the example inputs
  and the component's calibration batches (the UNet: seven timesteps across the schedule), on Linear, Conv, add,
  mul and cat (the XNNPACK quantizer's patterns); the slot matmuls are left in fp32.

The hypernetwork is never quantized (it is ~0.1% of a step and feeds merge coefficients).
Core ML compression lives in coreml_backend.py, ONNX Runtime's in onnx_backend.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lorarar.export.errors import ExportError
from lorarar.export.program import Method

EXECUTORCH_MODES = ("none", "int8", "w8a8")
QUANTIZED_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "vae_decoder")


def _static_weight_filter(node: torch.fx.Node) -> bool:
    """False for matmuls whose weight is a graph value (the slot's A', B'): those stay fp32."""
    if node.op == "call_function" and node.target in (torch.ops.aten.linear.default, torch.ops.aten.matmul.default):
        return len(node.args) > 1 and isinstance(node.args[1], torch.fx.Node) and node.args[1].op == "get_attr"
    return True


def quantizer(mode: str) -> object:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    q = XNNPACKQuantizer()
    if mode not in ("int8", "w8a8"):
        raise ExportError(
            f"--quant: {mode!r} is not an ExecuTorch quantization (choose from {', '.join(EXECUTORCH_MODES)})"
        )
    # Global, not set_module_type(nn.Conv2d): the module-type filter also tests the conv's weight and bias
    # (get_attr nodes, which carry no nn_module_stack) and so silently leaves every convolution in fp32.
    q.set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=mode == "int8"))
    q.filter_fn = _static_weight_filter
    return q


def quantize(
    ep: torch.export.ExportedProgram, method: Method, calibration: Sequence[tuple[torch.Tensor, ...]], mode: str
) -> torch.export.ExportedProgram:
    """Returns a re-exported program with quantize/dequantize nodes (XNNPACK fuses them into int8 kernels)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(ep.module(), quantizer(mode))  # type: ignore[arg-type]
    # Dynamic int8 observes activations at run time: one pass sets up the weight observers. Static W8A8 takes its
    # activation ranges from every calibration batch.
    batches = (method.example, *calibration) if mode == "w8a8" else (method.example,)
    with torch.no_grad():
        for batch in batches:
            prepared(*batch)
    converted = convert_pt2e(prepared)
    with torch.no_grad():
        return torch.export.export(converted, method.example, strict=False)
