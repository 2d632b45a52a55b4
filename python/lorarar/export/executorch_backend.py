"""ExecuTorch lowering: torch.export -> export-friendly forms -> (quantize) -> edge + partitioner -> .pte.

Partitioners: ``xnnpack`` (runs here, in ExecuTorch's Python runtime and the C++ runtime), ``coreml``, ``qnn`` and
``vulkan`` (lowered here where the partitioner works on Linux; they run on devices only and the manifest says so).

XNNPACK and the LoRA slot: the slot's two matmuls per layer take weights that are graph values (slices of the flat
inputs), which the stock XNNPACK Linear config refuses ("Expected weight to be a static param"), leaving ~110
``mm`` ops in ExecuTorch's portable kernels and splitting the graph at every attention (+72% per step on the
world UNet). ``SlotLinearConfig`` accepts them as XNNPACK fully-connected nodes with a dynamic filter, inside the
same partitions as the base layers.

Node order inside a delegate is its memory: XNNPACK plans a delegate's intermediate values by their lifetimes in
the order the nodes were serialised. ExecuTorch re-sorts the whole graph breadth-first after fusing each partition
(``legalize_graph``) and places each fused call where its last node was, so with more than one partition (int8: a
delegate per convolution first) a chunked attention's chunks ran all their score matmuls and softmaxes, then all
their value matmuls: every chunk's probabilities alive at once, 1 GiB at SD 1.5's 64x64 latent instead of one
64 MiB chunk. ``lower`` stamps each node's traced position before partitioning and re-sorts by it instead.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from lorarar.export import graph_forms
from lorarar.export.errors import ExportError
from lorarar.export.program import Component, Method

PARTITIONERS = ("xnnpack", "coreml", "qnn", "vulkan")
RUNS_HERE = {"xnnpack": True, "coreml": False, "qnn": False, "vulkan": False}

Progress = Callable[[str], None]


def _xnnpack_partitioner(quant: str | None) -> list[Any]:
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.gemm_configs import ConvolutionConfig, LinearConfig
    from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.utils import get_input_node, is_param_node

    class SlotLinearConfig(LinearConfig):  # type: ignore[misc]
        """fp32 Linear whose weight is a graph value (the LoRA slot's A', B'): an XNNPACK FC with dynamic filter."""

        def _get_weight_deps(self, node: torch.fx.Node, ep: Any, precision: Any) -> tuple[bool, list[torch.fx.Node]]:
            if precision == ConfigPrecisionType.FP32 and not is_param_node(ep, get_input_node(node, self.weight_idx)):
                return (True, [])
            return super()._get_weight_deps(node, ep, precision)  # type: ignore[no-any-return]

    class KeepLinearConfig(LinearConfig):  # type: ignore[misc]
        """Claims no Linear; listed only so that the conv partitioner does not decompose Linears to ``mm``."""

        def check_constraints(self, node: torch.fx.Node, ep: Any) -> bool:
            return False

    class DynamicQuantConvPartitioner(XnnpackPartitioner):  # type: ignore[misc]
        """One delegate per dynamically quantized Conv2d (XNNPACK's qd8 kernels).

        Per-op, as ExecuTorch's own DQ partitioner: a dynamically quantized conv inside a larger partition fails
        ChannelsLastTaggedReshapePass. Linears (dynamically quantized or the slot's fp32 ones) are left whole for
        the partitioner after it, which takes them inside its large partitions: a partitioner decomposes every
        Linear it does not keep, hence the keep-all filter.
        """

        def __init__(self) -> None:
            super().__init__(
                configs=[ConvolutionConfig, KeepLinearConfig],
                config_precisions=ConfigPrecisionType.DYNAMIC_QUANT,
                per_op_mode=True,
            )

        def ops_to_not_decompose(self, ep: Any) -> tuple[list[Any], Callable[[torch.fx.Node], bool]]:
            ops, claims = super().ops_to_not_decompose(ep)
            return ops, lambda node: bool(claims(node)) or node.target == torch.ops.aten.linear.default

    configs = [SlotLinearConfig if c is LinearConfig else c for c in ALL_PARTITIONER_CONFIGS]
    fp32 = XnnpackPartitioner(configs=configs)
    return [DynamicQuantConvPartitioner(), fp32] if quant == "int8" else [fp32]


def partitioners(kind: str, quant: str | None = None) -> list[Any]:
    if kind == "xnnpack":
        return _xnnpack_partitioner(quant)
    if kind == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        specs = CoreMLBackend.generate_compile_specs(
            compute_precision=ct.precision.FLOAT16, minimum_deployment_target=ct.target.iOS17
        )
        return [CoreMLPartitioner(compile_specs=specs)]
    if kind == "qnn":
        from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
        from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
        from executorch.backends.qualcomm.utils.utils import (
            generate_htp_compiler_spec,
            generate_qnn_executorch_compiler_spec,
        )

        backend = generate_htp_compiler_spec(use_fp16=True)
        specs = generate_qnn_executorch_compiler_spec(soc_model=QcomChipset.SM8650, backend_options=backend)
        return [QnnPartitioner(specs)]
    if kind == "vulkan":
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

        return [VulkanPartitioner()]
    raise ExportError(f"--backend: unknown ExecuTorch partitioner {kind!r} (choose from {', '.join(PARTITIONERS)})")


def export_method(
    method: Method, forms: Sequence[str], quant: str = "none", calibration: Sequence[tuple[torch.Tensor, ...]] = ()
) -> torch.export.ExportedProgram:
    """torch.export, then quantization (on the ATen graph, before the norms are rewritten), then the graph forms."""
    from lorarar.export import quantize

    with torch.no_grad():
        ep = torch.export.export(method.module, method.example, strict=False)
    if quant != "none":
        ep = quantize.quantize(ep, method, calibration, quant)
    return graph_forms.rewrite(ep, forms)


def delegation_summary(edge_program: Any) -> dict[str, Any]:
    """How much of a lowered method left the delegate: delegate calls and the ops that run in ExecuTorch kernels."""
    counts: collections.Counter[str] = collections.Counter()
    delegates = 0
    for node in edge_program.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name == "executorch_call_delegate":
            delegates += 1
        elif name != "getitem":
            counts[name] += 1
    return {"delegates": delegates, "portable_ops": dict(sorted(counts.items()))}


TRACED_ORDER = "lorarar_traced_order"


def _stamp_traced_order(gm: torch.fx.GraphModule) -> None:
    """A transform pass (before any partitioning): each node's position in the traced graph, kept in its meta
    (which fusing copies into the delegates' subgraphs)."""
    for i, node in enumerate(gm.graph.nodes):
        node.meta[TRACED_ORDER] = i


def _sort_in_traced_order(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``legalize_graph`` for lowering: a topological sort that takes, among the ready nodes, the one traced first.
    A fused partition (a submodule or delegate call) counts as traced where its first node was; a node lowering
    made up goes right after its input (getitem) or before its first user (the lowered module's get_attr)."""
    import heapq

    nodes = list(gm.graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    keys: dict[torch.fx.Node, float] = {}

    def fused_nodes(node: torch.fx.Node) -> list[torch.fx.Node]:
        if node.op == "call_module":
            submodule = gm.get_submodule(str(node.target))
            return list(submodule.graph.nodes) if isinstance(submodule, torch.fx.GraphModule) else []
        lowered = node.args[0] if node.op == "call_function" and node.args else None
        if isinstance(lowered, torch.fx.Node) and lowered.op == "get_attr":
            original = getattr(gm.get_submodule(str(lowered.target)), "original_module", None)
            if original is not None:
                return list(original.graph.nodes)
        return []

    def key(node: torch.fx.Node) -> float:
        if node not in keys:
            keys[node] = float("inf")  # while computing: a lowering-made cycle cannot recurse forever
            traced = node.meta.get(TRACED_ORDER)
            if traced is None:
                inside = [n.meta[TRACED_ORDER] for n in fused_nodes(node) if TRACED_ORDER in n.meta]
                if inside:
                    traced = min(inside)
                elif node.all_input_nodes:
                    traced = max(map(key, node.all_input_nodes))
                else:
                    traced = min(map(key, node.users), default=float("inf"))
            keys[node] = float(traced)
        return keys[node]

    for node in nodes:
        key(node)
    pending = {node: len(node.all_input_nodes) for node in nodes}
    ready = [(keys[n], position[n], n) for n in nodes if pending[n] == 0]
    heapq.heapify(ready)
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    while ready:
        _, _, node = heapq.heappop(ready)
        env[node] = graph.node_copy(node, lambda x: env[x])
        for user in node.users:
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, (keys[user], position[user], user))
    if len(env) != len(nodes):
        raise ExportError(f"lowering left a cycle in the graph ({len(nodes) - len(env)} nodes unordered)")
    graph._codegen = gm.graph._codegen
    gm.graph = graph
    return gm


@contextlib.contextmanager
def _traced_node_order() -> Iterator[None]:
    """While lowering: ExecuTorch's re-sort after each fused partition keeps the traced order (see the module
    docstring). Patched where ExecuTorch looks it up: a rename there fails here, loudly."""
    from unittest import mock

    with mock.patch("executorch.exir.lowered_backend_module.legalize_graph", _sort_in_traced_order):
        yield


def to_edge(programs: dict[str, torch.export.ExportedProgram], kind: str = "xnnpack", quant: str = "none") -> Any:
    """The edge program manager with every method partitioned and lowered to ``kind``, in traced node order."""
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    with _traced_node_order():
        return to_edge_transform_and_lower(
            programs,
            transform_passes=[_stamp_traced_order],
            partitioner=partitioners(kind, quant),
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )


def lower(
    component: Component,
    out: Path,
    kind: str = "xnnpack",
    quant: str = "none",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Writes ``out`` (a .pte with one method per component method); returns facts for the manifest."""
    from executorch.exir import ExecutorchBackendConfig

    say = progress or (lambda _: None)
    started = time.perf_counter()
    programs = {}
    for method in component.methods:
        say(f"{component.name}.{method.name}: torch.export" + (f" + {quant}" if quant != "none" else ""))
        programs[method.name] = export_method(
            method, component.forms, quant, component.calibration.get(method.name, [])
        )
    say(f"{component.name}: lower to {kind}")
    edge = to_edge(programs, kind, quant)
    summary = {name: delegation_summary(edge.exported_program(name)) for name in programs}
    say(f"{component.name}: serialise")
    et = edge.to_executorch(ExecutorchBackendConfig(extract_delegate_segments=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        et.write_to_file(f)
    return {
        "file": out.name,
        "format": "executorch",
        "partitioner": kind,
        "delegation": summary,
        "lower_seconds": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------- running here (parity, benchmarks)
def set_threads(n: int) -> None:
    """ExecuTorch's threadpool size; only before the first program is loaded in this process."""
    from executorch.extension.pybindings import portable_lib

    portable_lib._unsafe_reset_threadpool(n)


class Runner:
    """One loaded method of a .pte in ExecuTorch's Python runtime."""

    def __init__(self, pte: Path, method: str = "forward", data: Path | None = None) -> None:
        from executorch.runtime import Runtime

        runtime = Runtime.get()
        program = runtime.load_program(str(pte), data_path=str(data)) if data else runtime.load_program(str(pte))
        self.method = program.load_method(method)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return list(self.method.execute([t.contiguous() for t in inputs]))
