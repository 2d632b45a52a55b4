"""Export graph forms: chunked attention against diffusers' own attention, eagerly and lowered to XNNPACK."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor
from torch import nn

from lorarar.export import executorch_backend, graph_forms
from lorarar.export.program import Component, Method, TensorSpec

# (query tokens, context tokens or None for self-attention, VAE-style: 4D input, group norm, residual)
CASES = {
    "self": (100, None, False),
    "cross": (100, 7, False),
    "vae": (100, None, True),
}


def attention(vae: bool, cross: int | None) -> Attention:
    torch.manual_seed(0)
    if vae:
        return Attention(32, heads=1, dim_head=32, norm_num_groups=8, residual_connection=True, bias=True)
    return Attention(32, cross_attention_dim=16 if cross else None, heads=4, dim_head=8)


def inputs(tokens: int, cross: int | None, vae: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 32, 10, tokens // 10, generator=g) if vae else torch.randn(2, tokens, 32, generator=g)
    return (x,) if cross is None else (x, torch.randn(2, cross, 16, generator=g))


def budget_for_chunks(attn: Attention, keys: int, chunk: int) -> int:
    """The scores budget that makes chunks of `chunk` queries (batch 2)."""
    return 2 * attn.heads * keys * 4 * chunk


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunked_attention_equals_diffusers_attention(case: str) -> None:
    tokens, cross, vae = CASES[case]
    attn = attention(vae, cross)
    args = inputs(tokens, cross, vae)
    with torch.no_grad():
        attn.set_processor(AttnProcessor())
        want = attn(*args)
        attn.set_processor(graph_forms.ChunkedAttnProcessor(budget_for_chunks(attn, cross or tokens, 32)))
        got = attn(*args)  # chunks of 32, 32, 32, 4 queries
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_chunked_attention_is_the_classic_form_within_budget() -> None:
    """Below the budget (every default-world attention) the processor computes exactly what AttnProcessor does."""
    attn = attention(False, None)
    (x,) = inputs(100, None, False)
    with torch.no_grad():
        attn.set_processor(AttnProcessor())
        want = attn(x)
        attn.set_processor(graph_forms.ChunkedAttnProcessor())
        got = attn(x)
    assert torch.equal(got, want)


class Wrapped(nn.Module):
    def __init__(self, attn: Attention) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def test_chunked_attention_lowers_whole_to_xnnpack(tmp_path: Path) -> None:
    """The chunks (split, per-chunk bmm/softmax/bmm, cat) stay in one XNNPACK delegate, and ExecuTorch's runtime
    gives the eager result."""
    attn = attention(False, None)
    attn.set_processor(graph_forms.ChunkedAttnProcessor(budget_for_chunks(attn, 100, 32)))
    (x,) = inputs(100, None, False)
    with torch.no_grad():
        want = Wrapped(attn).eval()(x)
    method = Method("forward", Wrapped(attn).eval(), [TensorSpec("x", tuple(x.shape))], [], (x,))
    facts = executorch_backend.lower(Component("attention", [method], list(graph_forms.FORMS)), tmp_path / "a.pte")
    assert facts["delegation"]["forward"] == {"delegates": 1, "portable_ops": {}}
    (got,) = executorch_backend.Runner(tmp_path / "a.pte")(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


class ConvThenAttention(nn.Module):
    """A convolution (int8: a delegate of its own, lowered first) feeding a chunked self-attention."""

    def __init__(self, attn: Attention) -> None:
        super().__init__()
        self.conv = nn.Conv2d(32, 32, 3, padding=1)
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.attn(h.flatten(2).transpose(1, 2))


def attention_order(edge_program: object) -> list[str]:
    """The matmuls (B: a chunk's scores, then its values) and softmaxes (S) of each delegate, in serialisation
    order."""
    letters = {"aten._softmax.default": "S", "aten.bmm.default": "B"}
    orders = []
    for module in edge_program.graph_module.children():  # type: ignore[attr-defined]
        graph = getattr(module, "original_module", None)
        if graph is None:
            continue
        seq = [
            letter
            for node in graph.graph.nodes
            for op, letter in letters.items()
            if node.op == "call_function" and f"{op}>" in str(node.target)
        ]
        if seq:
            orders.append("".join(seq))
    return orders


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_lowering_keeps_each_chunk_together(quant: str) -> None:
    """Each chunk's scores, softmax and value matmul run before the next chunk's: XNNPACK plans a delegate's
    memory by the serialised order, and with all chunks' scores first they are all alive at once (1 GiB at SD 1.5
    int8, where a delegate per convolution is lowered before the attention's partition)."""
    attn = attention(False, None)
    attn.set_processor(graph_forms.ChunkedAttnProcessor(budget_for_chunks(attn, 100, 25)))
    torch.manual_seed(2)
    model = ConvThenAttention(attn).eval()
    x = torch.randn(2, 32, 10, 10, generator=torch.Generator().manual_seed(3))
    method = Method("forward", model, [TensorSpec("x", tuple(x.shape))], [], (x,))
    ep = executorch_backend.export_method(method, graph_forms.FORMS, quant)
    edge = executorch_backend.to_edge({"forward": ep}, "xnnpack", quant)
    assert attention_order(edge.exported_program("forward")) == ["BSB" * 4]
