"""The default model family: Stable Diffusion's classes and file layout, scaled down to 64x64 images.

- AutoencoderKL: 64x64x3 <-> 16x16x4 latents (SD: 512x512x3 <-> 64x64x4, the same 4 latent channels; 4x down
  instead of 8x so a 64x64 image keeps enough latent resolution).
- CLIPTextModel + CLIPTokenizer: the world's BPE vocabulary, 77-token prompts, hidden size 128.
- UNet2DConditionModel: cross-attention at 16x16 and 8x8 and in the mid block, epsilon prediction.
- Scheduler: SD 1.5's (scaled_linear betas 0.00085..0.012, 1000 steps), saved as DDIMScheduler.
"""

from __future__ import annotations

from typing import Any

TEXT_HIDDEN = 128

VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
)

UNET_CONFIG: dict[str, Any] = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(64, 128, 128),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TEXT_HIDDEN,
    # diffusers reads attention_head_dim as the number of heads (as SD 1.5's config does): 2 heads of 32 / 64.
    attention_head_dim=2,
    norm_num_groups=32,
)

SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
)


def text_config(vocab_size: int, bos: int, eos: int) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=TEXT_HIDDEN,
    )
