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
