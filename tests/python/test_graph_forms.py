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


@pytest.mark.parametrize(
    ("batch", "tokens", "width", "chunk"),
    [
        (2, 4096, 2560, 512),  # SD 1.5, 64x64 latent: GEGLU 320 -> 2 x 1280
        (2, 1024, 5120, 256),  # 32x32
        (2, 256, 10240, 128),  # 16x16
        (2, 64, 10240, None),  # the 8x8 mid block fits
        (2, 256, 1024, None),  # the default world's widest block fits: its programs stay as they were
        (2, 100, 4096, 50),  # 100 tokens, at most 512 a chunk by the budget -> ... the largest divisor of 100
    ],
)
def test_feed_forward_chunks_are_the_largest_divisor_within_budget(
    batch: int, tokens: int, width: int, chunk: int | None
) -> None:
    budget = graph_forms.FEED_FORWARD_BUDGET if tokens != 100 else 2 * 4096 * 4 * 60
    assert graph_forms.feed_forward_chunk(batch, tokens, width, budget) == chunk


def transformer_block() -> nn.Module:
    from diffusers.models.attention import BasicTransformerBlock

    torch.manual_seed(4)
    return BasicTransformerBlock(32, 4, 8, cross_attention_dim=16).eval()


def block_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """100 tokens of width 32 and a 7-token context of width 16."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 100, 32, generator=g), torch.randn(2, 7, 16, generator=g)


def test_chunked_feed_forward_equals_the_whole_block() -> None:
    block = transformer_block()
    x, context = block_inputs(5)
    with torch.no_grad():
        want = block(x, encoder_hidden_states=context)
        calls: list[int] = []
        block.ff.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[1]))
        # GEGLU projects 32 -> 2 x 128: 2 x 100 x 256 floats; a budget of 60 tokens gives chunks of 50.
        graph_forms.use_chunked_feed_forward(block, budget=2 * 256 * 4 * 60)
        got = block(x, encoder_hidden_states=context)
    assert calls == [50, 50]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_chunked_feed_forward_within_budget_is_the_block_as_it_was() -> None:
    block = transformer_block()
    x, context = block_inputs(6)
    with torch.no_grad():
        want = block(x, encoder_hidden_states=context)
        graph_forms.use_chunked_feed_forward(block)
        got = block(x, encoder_hidden_states=context)
    assert block._chunk_size is None
    assert torch.equal(got, want)


class Block(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.block(x, encoder_hidden_states=context)


def test_chunked_feed_forward_lowers_whole_to_xnnpack(tmp_path: Path) -> None:
    """The chunks (slices, per-chunk GEGLU, cat) stay in one XNNPACK delegate, and ExecuTorch's runtime gives the
    eager result of the unchunked block."""
    block = transformer_block()
    x, context = block_inputs(7)
    with torch.no_grad():
        want = Block(block).eval()(x, context)
    graph_forms.use_classic_attention(block)  # as unet.convert does: SDPA is not delegated
    graph_forms.use_chunked_feed_forward(block, budget=2 * 256 * 4 * 25)
    specs = [TensorSpec("x", tuple(x.shape)), TensorSpec("context", tuple(context.shape))]
    method = Method("forward", Block(block).eval(), specs, [], (x, context))
    ep = executorch_backend.export_method(method, graph_forms.FORMS, "none")
    projections = [n for n in ep.graph.nodes if n.op == "call_function" and "linear" in str(n.target)]
    assert len(projections) == 2 * 4 + 4 * 2  # q, k, v, out of the two attentions; GEGLU in and out, 4 chunks
    facts = executorch_backend.lower(Component("block", [method], list(graph_forms.FORMS)), tmp_path / "b.pte")
    assert facts["delegation"]["forward"] == {"delegates": 1, "portable_ops": {}}
    (got,) = executorch_backend.Runner(tmp_path / "b.pte")(x, context)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
