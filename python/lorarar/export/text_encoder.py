"""The text encoder converter: batch 1, 77 int64 token ids.

SD 1.x / 2.x: ``input_ids`` (1, 77) -> ``last_hidden_state`` (1, 77, D). SDXL: each encoder returns the penultimate
layer's ``hidden_states``; the second also ``text_embeds`` (the projected pooled output). The runtime concatenates
the uncond and cond encodings into the UNet's batch of 2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lorarar.export import graph_forms
from lorarar.export.program import Component, Method, TensorSpec
from lorarar.export.source import TextEncoderInfo

SEQ = 77


class TextEncoderProgram(nn.Module):
    def __init__(self, model: nn.Module, hidden_layer: int, with_projection: bool) -> None:
        super().__init__()
        self.model = model
        self.hidden_layer = hidden_layer
        self.with_projection = with_projection

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, output_hidden_states=self.hidden_layer != -1, return_dict=True)
        hidden = out.last_hidden_state if self.hidden_layer == -1 else out.hidden_states[self.hidden_layer]
        if self.with_projection:
            return hidden, out.text_embeds
        return (hidden,)


def output_names(info: TextEncoderInfo) -> list[str]:
    first = "last_hidden_state" if info.hidden_layer == -1 else "hidden_states"
    return [first, "text_embeds"] if info.with_projection else [first]


def convert(model: Any, info: TextEncoderInfo, forms: tuple[str, ...] = graph_forms.FORMS) -> Component:
    if "classic-attention" in forms:
        graph_forms.use_classic_attention(model)
    cfg = model.config
    hidden = int(cfg.hidden_size)
    program = TextEncoderProgram(model, info.hidden_layer, info.with_projection).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, int(cfg.vocab_size), (1, SEQ), generator=g, dtype=torch.int64)
    ids[0, 0] = int(cfg.bos_token_id)
    ids[0, 8:] = int(cfg.eos_token_id)
    names = output_names(info)
    outputs = [TensorSpec(names[0], (1, SEQ, hidden))]
    if info.with_projection:
        outputs.append(TensorSpec("text_embeds", (1, int(cfg.projection_dim))))
    method = Method("forward", program, [TensorSpec("input_ids", (1, SEQ), "int64")], outputs, (ids,))
    info_json = {
        "folder": info.folder,
        "tokenizer": info.tokenizer,
        "hidden_layer": info.hidden_layer,
        "params": sum(p.numel() for p in model.parameters()),
    }
    return Component(info.folder, [method], list(forms), info_json)
