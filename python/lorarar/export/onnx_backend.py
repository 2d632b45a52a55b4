"""ONNX export (opset 18, torch.onnx's dynamo exporter) for ONNX Runtime.

One ``.onnx`` file per method (``<component>.onnx``, or ``<component>.<method>.onnx`` for the hypernetwork's
methods). Weights go to an external-data file beside the graph (``<file>.onnx.data``) when the model is over
``EXTERNAL_DATA_BYTES`` (protobuf's 2 GiB limit; SD 1.5's fp32 UNet is 3.4 GB). Graph forms are not applied:
ONNX has GroupNormalization / LayerNormalization / Resize ops and ONNX Runtime fuses the attention pattern.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lorarar.export.program import Component, Method

OPSET = 18
EXTERNAL_DATA_BYTES = 1 << 30
Progress = Callable[[str], None]


def file_name(component: Component, method: Method) -> str:
    return f"{component.name}.onnx" if len(component.methods) == 1 else f"{component.name}.{method.name}.onnx"


def export(
    component: Component, out_dir: Path, quant: str = "none", progress: Progress | None = None
) -> dict[str, Any]:
    say = progress or (lambda _: None)
    started = time.perf_counter()
    files: dict[str, str] = {}
    for method in component.methods:
        name = file_name(component, method)
        say(f"{component.name}.{method.name}: onnx export")
        weight_bytes = sum(p.numel() * p.element_size() for p in method.module.parameters())
        path = out_dir / name
        with torch.no_grad():
            program = torch.onnx.export(
                method.module,
                method.example,
                input_names=[t.name for t in method.inputs],
                output_names=[t.name for t in method.outputs],
                opset_version=OPSET,
                dynamo=True,
                external_data=weight_bytes > EXTERNAL_DATA_BYTES,
                verbose=False,
            )
        assert program is not None
        program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
        if quant == "int8":
            say(f"{component.name}.{method.name}: onnxruntime dynamic int8")
            _quantize_dynamic(path)
        files[method.name] = name
    return {
        "files": files,
        "format": "onnx",
        "opset": OPSET,
        "lower_seconds": round(time.perf_counter() - started, 2),
    }


def _quantize_dynamic(path: Path) -> None:
    """ONNX Runtime's dynamic quantization: int8 weights (per channel) on MatMul/Gemm, activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.stem + ".q.onnx")
    quantize_dynamic(
        str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"]
    )
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    tmp.rename(path)


class Runner:
    """One .onnx file in ONNX Runtime's CPU provider."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {n: t.detach().contiguous().numpy() for n, t in zip(self.names, inputs, strict=True)}
        return [torch.from_numpy(o) for o in self.session.run(None, feed)]
