"""Export-friendly forms of the ops that would otherwise leave the XNNPACK delegate.

Each is exact in fp32 (up to rounding) and is applied as a decomposition of the exported graph, so the eager
modules stay untouched:

- attention: diffusers' ``AttnProcessor`` (bmm, softmax, bmm) instead of ``scaled_dot_product_attention``, and
  transformers' "eager" attention for CLIP; SDPA lowers to ~100 ops XNNPACK does not take (10x slower).
- chunked attention: the classic form with the queries in chunks whenever one attention's scores
  (batch x heads x queries x keys, fp32) would pass ``SCORES_BUDGET``: at SD 1.5's 64x64 latent the 4096-token
  self-attention scores are 1 GiB at the guidance batch of 2, held inside one XNNPACK delegate's workspace; chunks
  of queries are independent (softmax runs over keys), so the sum of their outputs is the same.
- chunked feed-forward: diffusers' own forward chunking (``set_chunk_feed_forward``, over the tokens) in every
  transformer block whose widest feed-forward activation (batch x tokens x GEGLU's projection, fp32) would pass
  ``FEED_FORWARD_BUDGET``: at SD 1.5's 64x64 latent the projection is 2 x 4096 x 2560 floats (80 MiB) with its
  halves and product beside it, again inside one delegate's workspace; the feed-forward acts on each token alone,
  so the chunks give the same rows.
- ``group_norm`` / ``layer_norm``: reshaped to 4D so the statistics are ``mean.dim`` over the two innermost dims
  (XNNPACK's global average pooling), then ``sub``/``mul``/``rsqrt``/``add``: all delegated, so the norms no
  longer split the graph into dozens of partitions.
- ``upsample_nearest2d`` by 2: two concatenations of the input with itself (4D views only).
- ``split`` / ``chunk`` (GEGLU's ``chunk(2, -1)``): one ``slice`` per piece (``split_with_sizes_copy`` is not
  delegated and split every transformer block out of the partition).
- the timestep embedding: diffusers' ``Timesteps`` with its frequencies precomputed (bitwise the same values), so
  the ``arange``, the int64 casts and the ``unsqueeze`` leave the graph; a same-shape ``expand`` (``get_time_embed``
  broadcasting the timestep to the batch) becomes a reshape.
- an integer residual scale (``mid_block_scale_factor`` is ``1`` in SD configs, the VAE's mid block too) becomes a
  float, so dividing by it needs no int64 -> float cast.
Those ops ran in ExecuTorch's portable kernels and cut the UNet and the VAE decoder into separate partitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor
from torch import nn

Decomposition = Callable[..., Any]

# Named forms: the manifest records which ones a program was lowered with.
FORMS = (
    "classic-attention",
    "chunked-attention",
    "chunked-feed-forward",
    "norm-as-mean",
    "upsample-as-cat",
    "split-as-slices",
    "timestep-table",
    "float-residual-scale",
)


def use_classic_attention(module: nn.Module) -> None:
    """diffusers: AttnProcessor on every Attention; transformers: the eager attention implementation.

    The same function as SDPA. Export needs it (SDPA does not delegate), and training on CPU uses it too: at the
    default world's sizes (256 tokens, heads 32-64 wide) SDPA's flash-attention backward is the slowest op of a
    step, and the plain form trains ~12% faster."""
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.set_processor(AttnProcessor())
    setter = getattr(module, "set_attn_implementation", None)
    if callable(setter):
        setter("eager")


# The most bytes one chunk of attention scores may take (fp32); the default world's attentions stay whole.
SCORES_BUDGET = 64 * 2**20


def use_chunked_attention(module: nn.Module, budget: int = SCORES_BUDGET) -> None:
    """diffusers: ``ChunkedAttnProcessor`` on every Attention (the classic form where no chunking is needed)."""
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.set_processor(ChunkedAttnProcessor(budget))


# The most bytes the widest feed-forward activation of one chunk of tokens may take (fp32).
FEED_FORWARD_BUDGET = 16 * 2**20


def feed_forward_chunk(batch: int, tokens: int, width: int, budget: int = FEED_FORWARD_BUDGET) -> int | None:
    """Tokens per chunk: the largest divisor of ``tokens`` (diffusers needs equal chunks) whose activation fits the
    budget; None when all tokens fit at once."""
    fits = budget // (batch * width * 4)
    if tokens <= fits:
        return None
    return max(d for d in range(1, max(1, fits) + 1) if tokens % d == 0)


def use_chunked_feed_forward(module: nn.Module, budget: int = FEED_FORWARD_BUDGET) -> None:
    """Every transformer block chunks its feed-forward over the tokens when its input would pass ``budget``.

    The chunk size depends on the block's input shape, known only when it runs (static under export): a forward
    pre-hook sets it on each call through the block's own ``set_chunk_feed_forward``.
    """
    for sub in module.modules():
        ff = getattr(sub, "ff", None)
        if isinstance(ff, FeedForward) and callable(getattr(sub, "set_chunk_feed_forward", None)):
            width = max(m.out_features for m in ff.modules() if isinstance(m, nn.Linear))

            def chunk_for_input(block: Any, args: tuple[Any, ...], kwargs: dict[str, Any], width: int = width) -> None:
                hidden = args[0] if args else kwargs["hidden_states"]
                block.set_chunk_feed_forward(feed_forward_chunk(hidden.shape[0], hidden.shape[1], width, budget), dim=1)

            sub.register_forward_pre_hook(chunk_for_input, with_kwargs=True)


class ChunkedAttnProcessor(AttnProcessor):  # type: ignore[misc]
    """diffusers' ``AttnProcessor`` with the queries in chunks of at most ``budget`` bytes of scores."""

    def __init__(self, budget: int = SCORES_BUDGET) -> None:
        super().__init__()
        self.budget = budget

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        four_d = hidden_states.ndim == 4
        queries = hidden_states.shape[2] * hidden_states.shape[3] if four_d else hidden_states.shape[1]
        keys = queries if encoder_hidden_states is None else encoder_hidden_states.shape[1]
        chunk = max(1, self.budget // (hidden_states.shape[0] * attn.heads * keys * 4))
        if queries <= chunk or attention_mask is not None or attn.spatial_norm is not None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if four_d:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        parts = [torch.bmm(attn.get_attention_scores(q, key, None), value) for q in query.split(chunk, dim=1)]
        hidden_states = attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.cat(parts, dim=1))))
        if four_d:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class TableTimesteps(nn.Module):
    """diffusers' ``Timesteps`` (sinusoidal embedding, even width) with the frequencies computed once, as
    ``get_timestep_embedding`` computes them: the same fp32 values, so the output is bitwise the same."""

    freqs: torch.Tensor

    def __init__(self, num_channels: int, flip_sin_to_cos: bool, downscale_freq_shift: float, scale: float) -> None:
        super().__init__()
        half = num_channels // 2
        exponent = -math.log(10000) * torch.arange(start=0, end=half, dtype=torch.float32)
        self.register_buffer(
            "freqs", torch.exp(exponent / (half - downscale_freq_shift)).reshape(1, half), persistent=False
        )  # not in state_dict: the module keeps the checkpoint's keys
        self.flip_sin_to_cos = flip_sin_to_cos
        self.scale = scale

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        emb = timesteps.reshape(-1, 1).float() * self.freqs
        if self.scale != 1:
            emb = self.scale * emb
        sin, cos = torch.sin(emb), torch.cos(emb)
        return torch.cat([cos, sin] if self.flip_sin_to_cos else [sin, cos], dim=-1)


def use_timestep_table(unet: nn.Module) -> None:
    """Swaps every even-width ``Timesteps`` for ``TableTimesteps``."""
    from diffusers.models.embeddings import Timesteps

    for parent in list(unet.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Timesteps) and child.num_channels % 2 == 0:
                table = TableTimesteps(
                    child.num_channels, child.flip_sin_to_cos, child.downscale_freq_shift, child.scale
                )
                setattr(parent, name, table)


def use_float_residual_scales(module: nn.Module) -> None:
    """``(x + h) / output_scale_factor`` with a float factor (same value): no int64 -> float cast in the graph."""
    from diffusers.models.resnet import ResnetBlock2D

    for block in module.modules():
        if isinstance(block, ResnetBlock2D) and isinstance(block.output_scale_factor, int):
            block.output_scale_factor = float(block.output_scale_factor)


def _norm_4d(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Normalises a 4D tensor over its two innermost dims (two-pass variance, like PyTorch)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    d = x - mean
    var = (d * d).mean(dim=(2, 3), keepdim=True)
    return d * torch.rsqrt(var + eps)


def group_norm(
    input: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    cudnn_enabled: bool = True,
) -> torch.Tensor:
    shape = input.shape
    b, c = shape[0], shape[1]
    y = _norm_4d(input.reshape(b, num_groups, c // num_groups, -1), eps).reshape(shape)
    affine_shape = [1, c] + [1] * (len(shape) - 2)
    if weight is not None:
        y = y * weight.reshape(affine_shape)
    if bias is not None:
        y = y + bias.reshape(affine_shape)
    return y


def layer_norm(
    input: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> torch.Tensor:
    shape = input.shape
    inner = 1
    for n in normalized_shape:
        inner *= int(n)
    y = _norm_4d(input.reshape(1, -1, inner, 1), eps).reshape(shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def upsample_nearest2d(
    input: torch.Tensor, output_size: Sequence[int] | None, scale_factors: Sequence[float] | None
) -> Any:
    """Nearest 2x as concatenations; any other size falls back to the default decomposition."""
    if input.dim() != 4:
        return NotImplemented
    b, c, h, w = (int(s) for s in input.shape)
    if output_size is not None:
        doubled = [int(s) for s in output_size] == [2 * h, 2 * w]
    else:
        doubled = scale_factors is not None and [float(s) for s in scale_factors] == [2.0, 2.0]
    if not doubled:
        return NotImplemented
    # Each cat gets two distinct (reshape) nodes: XNNPACK's partitioner counts distinct inputs and refuses
    # ``cat([x, x])`` as a one-tensor concatenation, which left every upsampler in portable kernels.
    x = torch.cat([input.reshape(b, c * h, w, 1), input.reshape(b, c * h, w, 1)], dim=3)  # each column twice
    x = torch.cat([x.reshape(b, c * h, 1, 2 * w), x.reshape(b, c * h, 1, 2 * w)], dim=2)  # each row twice
    return x.reshape(b, c, 2 * h, 2 * w)


def split_with_sizes(input: torch.Tensor, split_sizes: Sequence[int], dim: int = 0) -> list[torch.Tensor]:
    out = []
    start = 0
    for size in split_sizes:
        out.append(torch.ops.aten.slice.Tensor(input, dim, start, start + int(size)))
        start += int(size)
    return out


def split(input: torch.Tensor, split_size: int, dim: int = 0) -> list[torch.Tensor]:
    total = int(input.shape[dim])
    sizes = [min(int(split_size), total - start) for start in range(0, total, int(split_size))]
    return split_with_sizes(input, sizes, dim)


def expand(input: torch.Tensor, size: Sequence[int], *, implicit: bool = False) -> Any:
    """A same-shape expand as a reshape (XNNPACK takes static reshapes, not ``expand_copy``)."""
    if [int(s) for s in size] == [int(s) for s in input.shape]:
        return input.reshape(input.shape)
    return NotImplemented


def decompositions(forms: Sequence[str] = FORMS) -> dict[Any, Decomposition]:
    """The decomposition table for ``ExportedProgram.run_decompositions`` (on top of the core ATen one)."""
    table: dict[Any, Decomposition] = {}
    if "norm-as-mean" in forms:
        table[torch.ops.aten.group_norm.default] = group_norm
        table[torch.ops.aten.layer_norm.default] = layer_norm
    if "upsample-as-cat" in forms:
        table[torch.ops.aten.upsample_nearest2d.vec] = upsample_nearest2d
    if "split-as-slices" in forms:
        table[torch.ops.aten.split.Tensor] = split
        table[torch.ops.aten.split_with_sizes.default] = split_with_sizes
    if "timestep-table" in forms:
        table[torch.ops.aten.expand.default] = expand
    return table


def rewrite(ep: torch.export.ExportedProgram, forms: Sequence[str] = FORMS) -> torch.export.ExportedProgram:
    """Applies the export-friendly forms; ops they do not cover keep their default decomposition."""
    table = decompositions(forms)
    return ep.run_decompositions(table) if table else ep
