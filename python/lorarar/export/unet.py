"""The UNet converter: one noise-prediction step at classifier-free-guidance batch 2, with the LoRA slot.

Inputs (static shapes): ``sample`` (2, C, h, w), ``timestep`` (2,) float32, ``encoder_hidden_states`` (2, 77, D),
then ``lora_a`` / ``lora_b`` (the flat slot buffers, see lora_slot.py) and, for SDXL, ``text_embeds`` (2, 1280)
and ``time_ids`` (2, 6). Output: ``noise_pred`` (2, C, h, w). Names follow Apple's ml-stable-diffusion where it
has them (sample, timestep, encoder_hidden_states, noise_pred); layouts are diffusers' (no ANE 4D reshapes).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from lorarar.export import graph_forms
from lorarar.export.lora_slot import A_INPUT, ATTENTION_LEAVES, B_INPUT, LoraSlot, SlotLayout, find_targets
from lorarar.export.program import Component, Method, TensorSpec, random_inputs

BATCH = 2  # uncond + cond
SEQ = 77


class UNetProgram(nn.Module):
    def __init__(self, unet: Any, slot: LoraSlot | None, sdxl: bool) -> None:
        super().__init__()
        self.unet = unet
        self.slot = slot
        self.sdxl = sdxl

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        sample, timestep, context = inputs[:3]
        rest = list(inputs[3:])
        if self.slot is not None:
            self.slot.set(rest[0], rest[1])
            rest = rest[2:]
        added = {"text_embeds": rest[0], "time_ids": rest[1]} if self.sdxl else None
        try:
            return self.unet(sample, timestep, context, added_cond_kwargs=added, return_dict=False)[0]
        finally:
            if self.slot is not None:
                self.slot.set(None, None)


def slot_layout(unet: Any, max_rank: int, leaves: tuple[str, ...] = ATTENTION_LEAVES) -> SlotLayout:
    return SlotLayout.build(find_targets(unet, leaves), max_rank)


def input_specs(unet: Any, layout: SlotLayout | None) -> list[TensorSpec]:
    cfg = unet.config
    size = int(cfg.sample_size)
    cross = cfg.cross_attention_dim if isinstance(cfg.cross_attention_dim, int) else cfg.cross_attention_dim[0]
    specs = [
        TensorSpec("sample", (BATCH, int(cfg.in_channels), size, size)),
        TensorSpec("timestep", (BATCH,)),
        TensorSpec("encoder_hidden_states", (BATCH, SEQ, int(cross))),
    ]
    if layout is not None:
        specs += [TensorSpec(A_INPUT, (layout.a_size,)), TensorSpec(B_INPUT, (layout.b_size,))]
    if cfg.addition_embed_type == "text_time":
        pooled = int(cfg.projection_class_embeddings_input_dim) - 6 * int(cfg.addition_time_embed_dim)
        specs += [TensorSpec("text_embeds", (BATCH, pooled)), TensorSpec("time_ids", (BATCH, 6))]
    return specs


def convert(
    unet: Any, layout: SlotLayout | None, *, copy_model: bool = False, forms: tuple[str, ...] = graph_forms.FORMS
) -> Component:
    """The UNet step program. With ``layout`` None the UNet is exported as is (fused weights, no slot).

    The module is modified in place (attention processor, slot layers) unless ``copy_model``.
    """
    if copy_model:
        unet = copy.deepcopy(unet)
    if "classic-attention" in forms:
        graph_forms.use_classic_attention(unet)
    if "chunked-attention" in forms:
        graph_forms.use_chunked_attention(unet)
    if "chunked-feed-forward" in forms:
        graph_forms.use_chunked_feed_forward(unet)
    if "timestep-table" in forms:
        graph_forms.use_timestep_table(unet)
    if "float-residual-scale" in forms:
        graph_forms.use_float_residual_scales(unet)
    sdxl = unet.config.addition_embed_type == "text_time"
    specs = input_specs(unet, layout)
    slot = LoraSlot(unet, layout) if layout is not None else None
    program = UNetProgram(unet, slot, sdxl).eval()
    example = step_inputs(specs, seed=0, timestep=500.0)
    cfg = unet.config
    out = TensorSpec("noise_pred", (BATCH, int(cfg.out_channels), int(cfg.sample_size), int(cfg.sample_size)))
    info: dict[str, Any] = {
        "config": {k: v for k, v in dict(cfg).items() if not k.startswith("_")},
        "params": sum(p.numel() for p in unet.parameters()),
    }
    if layout is not None:
        info["lora_slot"] = layout.to_json()
    # Static quantization's activation ranges: the example's shapes across the schedule, fresh noise and context each.
    calibration = {"forward": [step_inputs(specs, 100 + i, t) for i, t in enumerate(CALIBRATION_TIMESTEPS)]}
    return Component("unet", [Method("forward", program, specs, [out], example)], list(forms), info, calibration)


CALIBRATION_TIMESTEPS = (999.0, 800.0, 600.0, 400.0, 200.0, 50.0, 1.0)


def step_inputs(specs: list[TensorSpec], seed: int, timestep: float) -> tuple[torch.Tensor, ...]:
    """Random inputs of one step at ``timestep``; the slot gets a small random adapter (x 0.01), so the slot path
    is exercised when a quantizer observes the graph."""
    batch = list(random_inputs(specs, seed=seed))
    batch[1] = torch.full((BATCH,), timestep)
    for k, spec in enumerate(specs):
        if spec.name in (A_INPUT, B_INPUT):
            batch[k] = batch[k] * 0.01
    return tuple(batch)
