"""Stage "loras": the default world's LoRA library, trained DreamBooth-style as in the LoRA.rar paper.

- Content LoRA: a few images of one subject (varied poses, everyday styles) captioned "a sks <class>", with
  prior preservation on random instances of the class captioned "a <class>".
- Style LoRA: one image of one style (a random object of some class drawn in it, with flips and shifts)
  captioned "a <class> in zwz style", with prior preservation on random objects of random classes.

Both train rank-r LoRAs on the UNet attention projections to_q / to_k / to_v / to_out.0 and are saved as
diffusers / peft safetensors (fp16) that diffusers' load_lora_weights loads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lorarar import data_parallel
from lorarar.export.graph_forms import use_classic_attention
from lorarar.formats.atomic import atomic_file
from lorarar.world import catalog, data
from lorarar.world.train_base import _to_tensor, tokenize

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass
class LoraConfig:
    seed: int = 0
    rank: int = 8
    content_steps: int = 500
    # 800, not 400: one image's style at 400 steps left 3 of 16 under 80% alone (arctic, denim, coral, 16 samples
    # each); at 800, 15 of 16 (coral 38%), none worse, and the stage stays under an hour (~43 min here).
    style_steps: int = 800
    lr: float = 1.5e-3
    batch: int = 6  # instance images per step (plus as many prior images when prior_weight > 0)
    content_images: int = 6
    prior_images: int = 64
    # DreamBooth's prior preservation; off by default, as in the LoRAs ZipLoRA and LoRA.rar merge (and 2x faster)
    prior_weight: float = 0.0
    mixed_precision: str = "bf16"
    # Offset noise (a per-image, per-channel constant added to the training noise): with SD's noise schedule the
    # last timestep keeps part of the image's mean, so sampling inherits its overall colour from the initial noise;
    # offset noise lets a LoRA learn a style's background and palette instead.
    offset_noise: float = 0.3


class Trainer:
    """Loads the base pipeline once and trains one LoRA after another on it."""

    def __init__(self, pipeline_dir: Path, cfg: LoraConfig) -> None:
        from diffusers import DDPMScheduler, StableDiffusionPipeline

        self.cfg = cfg
        self.device = data_parallel.state().device
        self.pipe = StableDiffusionPipeline.from_pretrained(pipeline_dir, torch_dtype=torch.float32).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.noise = DDPMScheduler.from_config(self.pipe.scheduler.config)
        for module in (self.pipe.unet, self.pipe.vae, self.pipe.text_encoder):
            module.requires_grad_(False)
        self.scale = float(self.pipe.vae.config.scaling_factor)
        use_classic_attention(self.pipe.unet)  # faster backward on CPU (see its docstring)

    @torch.no_grad()
    def encode_images(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.pipe.vae.encode(_to_tensor(images).to(self.device)).latent_dist
        return dist.mean.cpu(), dist.std.cpu()

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> torch.Tensor:
        ids = tokenize(self.pipe.tokenizer, prompts)
        return self.pipe.text_encoder(ids.to(self.device))[0].cpu()

    def train(
        self, name: str, instance: np.ndarray, instance_prompt: str, prior: data.Batch, steps: int, seed: int
    ) -> dict[str, torch.Tensor]:
        from accelerate import Accelerator
        from peft import LoraConfig as PeftConfig
        from peft.utils import get_peft_model_state_dict

        cfg = self.cfg
        unet = self.pipe.unet
        torch.manual_seed(seed)
        unet.add_adapter(
            PeftConfig(r=cfg.rank, lora_alpha=cfg.rank, target_modules=TARGETS, init_lora_weights="gaussian"),
            adapter_name=name,
        )
        unet.set_adapter(name)
        params = [p for n, p in unet.named_parameters() if "lora_" in n and f".{name}." in n]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
        inst_mean, inst_std = self.encode_images(instance)
        prior_mean, prior_std = self.encode_images(prior.images)
        inst_emb = self.embed([instance_prompt])
        prior_prompts = sorted(set(prior.captions))
        prior_embs = self.embed(prior_prompts)
        prior_index = torch.tensor([prior_prompts.index(c) for c in prior.captions])
        # One LoRA is one process's job (train_loras deals them out): no gradients to share, so no DDP wrapper.
        # An Accelerator per LoRA, so that none keeps the optimizers (and LoRA weights) of the ones before.
        accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
        opt = accelerator.prepare_optimizer(opt)
        for step in range(steps):
            rng = np.random.default_rng((seed, step))
            g = torch.Generator().manual_seed(seed * 1000003 + step)
            i = torch.from_numpy(rng.integers(0, len(inst_mean), cfg.batch))
            j = torch.from_numpy(rng.integers(0, len(prior_mean), cfg.batch if cfg.prior_weight > 0 else 0))
            z = (
                torch.cat(
                    [
                        inst_mean[i] + inst_std[i] * torch.randn(inst_mean[i].shape, generator=g),
                        prior_mean[j] + prior_std[j] * torch.randn(prior_mean[j].shape, generator=g),
                    ]
                )
                * self.scale
            )
            emb = torch.cat([inst_emb.expand(cfg.batch, -1, -1), prior_embs[prior_index[j]]])
            noise = torch.randn(z.shape, generator=g)
            if cfg.offset_noise > 0:
                noise = noise + cfg.offset_noise * torch.randn((*z.shape[:2], 1, 1), generator=g)
            t = torch.randint(0, self.noise.config.num_train_timesteps, (len(z),), generator=g)
            x, t, emb, noise = (v.to(self.device) for v in (self.noise.add_noise(z, noise, t), t, emb, noise))
            with accelerator.autocast():
                pred = unet(x, t, emb).sample.float()
            err = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
            loss = err[: cfg.batch].mean()
            if cfg.prior_weight > 0:
                loss = loss + cfg.prior_weight * err[cfg.batch :].mean()
            opt.zero_grad()
            accelerator.backward(loss)
            opt.step()
        state = get_peft_model_state_dict(unet, adapter_name=name)
        unet.delete_adapters(name)
        return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}


def save_lora(state: dict[str, torch.Tensor], rank: int, path: Path) -> None:
    """diffusers' writer: unet.<module>.lora_A/B.weight plus the peft config as metadata."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    metadata = {
        "r": rank,
        "lora_alpha": rank,
        "target_modules": TARGETS,
        "peft_type": "LORA",
        "use_dora": False,
        "use_rslora": False,
        "lora_dropout": 0.0,
        "bias": "none",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        folder = tmp.with_name(tmp.name + ".d")
        StableDiffusionLoraLoaderMixin.save_lora_weights(
            str(folder), unet_lora_layers=state, unet_lora_adapter_metadata=metadata
        )
        (folder / "pytorch_lora_weights.safetensors").replace(tmp)
        folder.rmdir()


def train_loras(
    root: Path, cfg: LoraConfig | None = None, only: list[str] | None = None, scope: str = "library"
) -> dict[str, Any]:
    """Trains every missing LoRA of the library, or of every train name with scope "all" (resumable: finished
    files are kept)."""
    cfg = cfg or LoraConfig()
    paths = catalog.paths(root)
    jobs: list[tuple[str, str]] = [("content", s) for s in catalog.library_subjects(scope)]
    jobs += [("style", s) for s in catalog.library_styles(scope)]
    trainer = Trainer(paths.pipeline, cfg)
    if only:
        jobs = [j for j in jobs if j[1] in only]

    def path_of(kind: str, name: str) -> Path:
        return paths.content_lora(name) if kind == "content" else paths.style_lora(name)

    # Several processes (accelerate launch / torchrun) deal the missing LoRAs out, each trained whole by one; they
    # agree on what is missing before any of them writes a file.
    processes = data_parallel.state()
    pending = [(kind, name) for kind, name in jobs if not path_of(kind, name).exists()]
    processes.wait_for_everyone()
    started = time.time()
    done = []
    mine = data_parallel.my_share(pending)
    for kind, name in tqdm(mine, desc="train loras", unit="lora", disable=not processes.is_local_main_process):
        path = path_of(kind, name)
        seed = lora_seed(cfg.seed, name)
        images, prompt = training_images(kind, name, cfg)
        if kind == "content":
            prior = data.class_prior(catalog.subject_class(name), seed, cfg.prior_images)
            steps = cfg.content_steps
        else:
            prior = data.Batch(*_mixed_prior(seed, cfg.prior_images))
            steps = cfg.style_steps
        state = trainer.train(name, images, prompt, prior, steps, seed)
        save_lora(state, cfg.rank, path)
        done.append(name)
    trained = set(data_parallel.gather_lists(done))  # a collective: every process has finished its share
    facts = {
        "config": asdict(cfg),
        "trained": [name for _, name in pending if name in trained],
        "seconds": round(time.time() - started, 1),
    }
    return facts


def lora_seed(base_seed: int, name: str) -> int:
    return base_seed * 7907 + hash_name(name) % 100000


def training_images(kind: str, name: str, cfg: LoraConfig | None = None) -> tuple[np.ndarray, str]:
    """The images and caption a library LoRA was trained on (the hypernetwork's objective reuses them)."""
    cfg = cfg or LoraConfig()
    seed = lora_seed(cfg.seed, name)
    if kind == "content":
        return data.subject_images(name, seed, cfg.content_images), catalog.content_prompt(name)
    cls = catalog.STYLE_IMAGE_CLASS[name]
    image = data.style_image(name, cls, seed)
    # One image, with flips and small shifts.
    images = np.stack(
        [np.roll(np.roll(image[:, ::flip], dy, 0), dx, 1) for flip in (1, -1) for dx in (-4, 0, 4) for dy in (-3, 3)]
    )
    return images, catalog.style_prompt(cls)


def _mixed_prior(seed: int, count: int) -> tuple[np.ndarray, list[str]]:
    images, captions = [], []
    for i, cls in enumerate(data.CLASS_NAMES * (count // len(data.CLASS_NAMES) + 1)):
        if i == count:
            break
        batch = data.class_prior(cls, seed + i, 1)
        images.append(batch.images[0])
        captions.append(batch.captions[0])
    return np.stack(images), captions


def hash_name(name: str) -> int:
    """A stable (not salted) hash, so seeds do not change between runs."""
    h = 0
    for ch in name.encode():
        h = (h * 131 + ch) % (1 << 31)
    return h


def write_facts(path: Path, key: str, value: Any) -> None:
    facts = json.loads(path.read_text()) if path.exists() else {}
    facts[key] = value
    path.write_text(json.dumps(facts, indent=2))
