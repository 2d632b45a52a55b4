"""The model being exported: a diffusers Stable Diffusion folder (SD 1.x / 2.x / SDXL layout), checked before any
weight is read, and loaded one component at a time (the UNet alone is 3.4 GB in fp32 at SD 1.5 scale).

Also builds models with random weights: the default world's family (until the trained one exists) and the
published SD configs in ``export/presets/`` for the scale benchmark (on the meta device, then filled cheaply).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorarar.export.errors import ExportError

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
UNSUPPORTED_UNET_KEYS = {
    "class_embed_type": "class embeddings",
    "encoder_hid_dim_type": "encoder_hid_proj (IP-Adapter/Kandinsky-style text projection)",
    "time_cond_proj_dim": "guidance-embedding time conditioning",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data


@dataclass
class TextEncoderInfo:
    folder: str  # text_encoder | text_encoder_2
    tokenizer: str  # tokenizer | tokenizer_2
    config: dict[str, Any]
    with_projection: bool  # CLIPTextModelWithProjection (SDXL's second encoder)
    hidden_layer: int  # -1: last_hidden_state; -2: penultimate hidden states (SDXL)


@dataclass
class ModelSource:
    """A checked SD folder; components are loaded on demand."""

    path: Path
    family: str  # sd1 | sd2 | sdxl | custom
    unet_config: dict[str, Any]
    vae_config: dict[str, Any]
    scheduler_config: dict[str, Any]
    text_encoders: list[TextEncoderInfo] = field(default_factory=list)

    @property
    def sdxl(self) -> bool:
        return self.family == "sdxl"

    @property
    def latent_channels(self) -> int:
        return int(self.unet_config.get("in_channels", 4))

    @property
    def latent_size(self) -> int:
        return int(self.unet_config["sample_size"])

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0])) - 1)

    @property
    def image_size(self) -> int:
        return self.latent_size * self.vae_scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae_config.get("scaling_factor", 0.18215))

    @property
    def cross_attention_dim(self) -> int:
        dim = self.unet_config["cross_attention_dim"]
        return int(dim if isinstance(dim, int) else dim[0])

    def tokenizer_files(self, info: TextEncoderInfo) -> list[Path]:
        folder = self.path / info.tokenizer
        return [folder / name for name in TOKENIZER_FILES if (folder / name).exists()]

    # ------------------------------------------------------------ loading (fp32, eval mode)
    def load_unet(self) -> nn.Module:
        from diffusers import UNet2DConditionModel

        return _load(UNet2DConditionModel, self.path / "unet")

    def load_vae(self) -> nn.Module:
        from diffusers import AutoencoderKL

        return _load(AutoencoderKL, self.path / "vae")

    def load_text_encoder(self, info: TextEncoderInfo) -> nn.Module:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        cls = CLIPTextModelWithProjection if info.with_projection else CLIPTextModel
        return _load(cls, self.path / info.folder)


def _load(cls: Any, folder: Path) -> nn.Module:
    try:
        model = cls.from_pretrained(str(folder), torch_dtype=torch.float32)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{folder}: cannot load weights ({first})") from None
    model.eval()
    model.requires_grad_(False)
    return model


def _family(unet: dict[str, Any]) -> str:
    if unet.get("addition_embed_type") == "text_time":
        return "sdxl"
    dim = unet.get("cross_attention_dim")
    return {768: "sd1", 1024: "sd2"}.get(dim if isinstance(dim, int) else -1, "custom")


def open_source(path: str | Path) -> ModelSource:
    """Checks the folder's layout and configs; raises ExportError naming what is missing or unsupported."""
    root = Path(path)
    if not root.is_dir():
        raise ExportError(f"{root}: not a folder (expected a diffusers Stable Diffusion pipeline folder)")
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (root / sub).is_dir():
            raise ExportError(f"{root}: no {sub}/ folder (expected a diffusers Stable Diffusion pipeline folder)")
    unet = _read_json(root / "unet" / "config.json")
    if unet.get("_class_name") != "UNet2DConditionModel":
        raise ExportError(
            f"{root / 'unet/config.json'}: unsupported UNet class {unet.get('_class_name')!r} "
            "(supported: UNet2DConditionModel of SD 1.x / 2.x / SDXL)"
        )
    for key, what in UNSUPPORTED_UNET_KEYS.items():
        if unet.get(key) is not None:
            raise ExportError(f"{root / 'unet/config.json'}: unsupported: {what} ({key}={unet[key]!r})")
    addition = unet.get("addition_embed_type")
    if addition not in (None, "text_time"):
        raise ExportError(f"{root / 'unet/config.json'}: unsupported addition_embed_type {addition!r}")
    vae = _read_json(root / "vae" / "config.json")
    if vae.get("_class_name") != "AutoencoderKL":
        raise ExportError(
            f"{root / 'vae/config.json'}: unsupported VAE class {vae.get('_class_name')!r} (supported: AutoencoderKL)"
        )
    scheduler = _read_json(root / "scheduler" / "scheduler_config.json")
    family = _family(unet)
    encoders = [_text_encoder(root, "text_encoder", "tokenizer", -2 if family == "sdxl" else -1)]
    if family == "sdxl":
        for sub in ("text_encoder_2", "tokenizer_2"):
            if not (root / sub).is_dir():
                raise ExportError(f"{root}: SDXL UNet (addition_embed_type=text_time) but no {sub}/ folder")
        encoders.append(_text_encoder(root, "text_encoder_2", "tokenizer_2", -2))
        if not encoders[1].with_projection:
            raise ExportError(f"{root / 'text_encoder_2/config.json'}: expected CLIPTextModelWithProjection")
    return ModelSource(root, family, unet, vae, scheduler, encoders)


def _text_encoder(root: Path, folder: str, tokenizer: str, hidden_layer: int) -> TextEncoderInfo:
    config = _read_json(root / folder / "config.json")
    arch = (config.get("architectures") or [None])[0]
    if arch not in ("CLIPTextModel", "CLIPTextModelWithProjection"):
        raise ExportError(
            f"{root / folder / 'config.json'}: unsupported text encoder {arch!r} "
            "(supported: CLIPTextModel, CLIPTextModelWithProjection)"
        )
    for name in ("vocab.json", "merges.txt"):
        if not (root / tokenizer / name).exists():
            raise ExportError(f"{root / tokenizer}: no {name} (a CLIP BPE tokenizer is needed)")
    return TextEncoderInfo(folder, tokenizer, config, arch == "CLIPTextModelWithProjection", hidden_layer)


# ---------------------------------------------------------------- random weights
def fill_random(model: nn.Module, seed: int = 0) -> nn.Module:
    """Materialises a meta-device model on the CPU with cheap, well-scaled random values (no kaiming loops)."""
    model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02, generator=g)
            elif p.dim() == 1:  # norm scales
                p.fill_(1.0)
            else:
                fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else p.shape[0]
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)
        for name, buf in model.named_buffers():  # to_empty left them uninitialised
            if name.endswith("position_ids"):
                buf.copy_(torch.arange(buf.shape[-1]).expand_as(buf))
            elif buf.is_floating_point():
                buf.zero_()
            else:
                raise ExportError(f"{name}: cannot initialise buffer of a meta-device model")
    model.eval()
    model.requires_grad_(False)
    return model


def random_unet(config: dict[str, Any], seed: int = 0) -> nn.Module:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    return fill_random(unet, seed)


# Smaller than the world's family, same layout: for tests.
TINY_UNET: dict[str, Any] = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=2,
    norm_num_groups=8,
)
TINY_VAE: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=16,
)


def presets_dir() -> Path:
    """export/presets/ of the source tree: published SD configs (UNet, VAE, text encoder) as JSON."""
    return Path(__file__).resolve().parents[3] / "export" / "presets"


def load_preset(name: str) -> dict[str, Any]:
    """A preset's config without its bookkeeping keys (``_source``, ``_class_name``, ``architectures``, ...)."""
    path = presets_dir() / f"{name}.json"
    data = _read_json(path)
    return {k: v for k, v in data.items() if not k.startswith("_") and k not in ("architectures", "model_type")}


def write_preset_pipeline(out: Path, family: str = "sd15", seed: int = 0) -> Path:
    """A pipeline folder with the published configs of ``family`` (``export/presets/<family>-*.json``) and random
    weights, built on the meta device and filled cheaply. Tokenizer: the world's files (ids fit CLIP's vocab)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lorarar.world import models, tokenizer

    tokenizer.write_tokenizer(out / "tokenizer")
    with torch.device("meta"):
        unet = UNet2DConditionModel(**load_preset(f"{family}-unet"))
        vae = AutoencoderKL(**load_preset(f"{family}-vae"))
        text = CLIPTextModel(CLIPTextConfig(**load_preset(f"{family}-text_encoder")))
    text.config.architectures = ["CLIPTextModel"]
    for i, model in enumerate((unet, vae, text)):
        fill_random(model, seed + i)
    text.save_pretrained(out / "text_encoder", safe_serialization=True)
    del text
    vae.save_pretrained(out / "vae", safe_serialization=True)
    del vae
    unet.save_pretrained(out / "unet", safe_serialization=True)
    del unet
    DDIMScheduler(**models.SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    return out


def write_random_pipeline(out: Path, size: str = "world", seed: int = 0) -> Path:
    """A diffusers SD pipeline folder with random weights: the default world's configs (``world``) or a smaller one
    of the same layout (``tiny``). Tokenizer: the world's CLIP-format BPE files."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lorarar.world import models, tokenizer

    torch.manual_seed(seed)
    unet_cfg, vae_cfg = (models.UNET_CONFIG, models.VAE_CONFIG) if size == "world" else (TINY_UNET, TINY_VAE)
    hidden = int(unet_cfg["cross_attention_dim"])
    vocab_path = out / "tokenizer"
    tokenizer.write_tokenizer(vocab_path)
    vocab = json.loads((vocab_path / "vocab.json").read_text())
    text_cfg = models.text_config(len(vocab), vocab[tokenizer.BOS], vocab[tokenizer.EOS])
    if size != "world":
        text_cfg.update(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=hidden,
        )
    text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    text.config.architectures = ["CLIPTextModel"]
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    vae.register_to_config(scaling_factor=0.5)
    text.save_pretrained(out / "text_encoder", safe_serialization=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    DDIMScheduler(**models.SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "scheduler": ["diffusers", "DDIMScheduler"],
            },
            indent=2,
        )
    )
    return out


def copy_tokenizer(source: ModelSource, info: TextEncoderInfo, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in source.tokenizer_files(info):
        shutil.copyfile(f, dest / f.name)
        out.append(dest / f.name)
    return out
