"""Core ML ``.mlpackage`` export via coremltools (ML program, fp16 compute, iOS 17), converted from a traced module.

Compression is a separate step on the converted model (as in Apple's ml-stable-diffusion): ``int8`` (linear
weight quantization, per channel), ``palette6`` / ``palette4`` (k-means palettization). The LoRA slot's flat buffers
stay ordinary fp32 model inputs, so the runtime can feed a new merge without recompiling. Prediction needs macOS;
here conversion and compression are checked, and the manifest marks the programs as not runnable on this host.

File and tensor names follow Apple's resources where that costs nothing (``Unet.mlpackage``,
``TextEncoder.mlpackage``, ``VAEDecoder.mlpackage``; ``sample``/``timestep``/``encoder_hidden_states`` ->
``noise_pred``, ``input_ids`` -> ``last_hidden_state``, ``z`` -> ``image``), but the layouts are diffusers' (e.g.
``encoder_hidden_states`` is (2, 77, D), not Apple's (2, D, 1, 77)), so the packages are not drop-in replacements for
Apple's Swift pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lorarar.export.errors import ExportError
from lorarar.export.program import Component, Method

QUANT = ("none", "int8", "palette6", "palette4")
APPLE_NAMES = {
    "unet": "Unet",
    "text_encoder": "TextEncoder",
    "text_encoder_2": "TextEncoder2",
    "vae_decoder": "VAEDecoder",
    "hypernet": "HyperNet",
}
Progress = Callable[[str], None]


def file_name(component: Component, method: Method) -> str:
    base = APPLE_NAMES.get(component.name, component.name)
    return f"{base}.mlpackage" if len(component.methods) == 1 else f"{base}_{method.name}.mlpackage"


def _compress(model: Any, quant: str) -> Any:
    import coremltools.optimize.coreml as cto

    if quant == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=op))
    if quant in ("palette6", "palette4"):
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=int(quant[-1]), granularity="per_tensor")
        return cto.palettize_weights(model, cto.OptimizationConfig(global_config=op))
    raise ExportError(f"--quant: {quant!r} is not a Core ML compression (choose from {', '.join(QUANT)})")


def export(
    component: Component, out_dir: Path, quant: str = "none", progress: Progress | None = None
) -> dict[str, Any]:
    import coremltools as ct

    say = progress or (lambda _: None)
    started = time.perf_counter()
    files: dict[str, str] = {}
    io: dict[str, Any] = {}
    for method in component.methods:
        say(f"{component.name}.{method.name}: trace")
        with torch.no_grad():
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                method.module, method.example, strict=False, check_trace=False
            )
        say(f"{component.name}.{method.name}: coremltools convert")
        inputs = [ct.TensorType(name=t.name, shape=t.shape, dtype=_np_dtype(t.dtype)) for t in method.inputs]
        model = ct.convert(
            traced,
            inputs=inputs,
            outputs=[ct.TensorType(name=t.name) for t in method.outputs],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS17,
        )
        if quant != "none":
            say(f"{component.name}.{method.name}: compress {quant}")
            model = _compress(model, quant)
        name = file_name(component, method)
        model.short_description = f"lorarar {component.name}.{method.name}"
        model.save(str(out_dir / name))
        files[method.name] = name
        spec = model.get_spec()
        io[method.name] = {
            "inputs": [_feature(f) for f in spec.description.input],
            "outputs": [_feature(f) for f in spec.description.output],
        }
    return {
        "files": files,
        "format": "mlpackage",
        "compute_precision": "float16",
        "minimum_deployment_target": "iOS17",
        "coreml_io": io,
        "lower_seconds": round(time.perf_counter() - started, 2),
    }


def _np_dtype(dtype: str) -> Any:
    import numpy as np

    # Core ML has no int64 inputs: token ids are int32 there.
    return {"float32": np.float32, "float16": np.float16, "int64": np.int32, "int32": np.int32}[dtype]


def _feature(f: Any) -> dict[str, Any]:
    array = f.type.multiArrayType
    dtype = {65568: "float32", 65552: "float16", 131104: "int32"}.get(int(array.dataType), str(array.dataType))
    return {"name": f.name, "shape": [int(s) for s in array.shape], "dtype": dtype}
