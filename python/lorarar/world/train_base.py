"""Stage "base": the default model family, trained from seeds.

1. tokenizer files; 2. the VAE, on renders of random class instances in random styles (every pattern and
backdrop, so it encodes whatever style LoRAs draw); 3. the UNet's dataset: random instances in plain styles with
captions (texture is left to style LoRAs, see styles.plain_style); 4. its latents; 5. UNet + text encoder
jointly (epsilon prediction, 10% caption dropout for classifier-free guidance, EMA weights); 6. a
StableDiffusionPipeline folder.

Every step is a function of the seed and the step number, and every part checkpoints into the work folder, so an
interrupted run resumes where it stopped and gives the same weights. Under ``accelerate launch`` / ``torchrun`` the
processes share each step's batch (lorarar.data_parallel): the same weights, sooner.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lorarar import data_parallel
from lorarar.export.graph_forms import use_classic_attention
from lorarar.formats.atomic import atomic_dir, atomic_file
from lorarar.world import data
from lorarar.world.models import SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG, text_config
from lorarar.world.tokenizer import write_tokenizer


@dataclass
class BaseConfig:
    seed: int = 0
    images: int = 24000
    vae_steps: int = 3000
    vae_batch: int = 32
    vae_crop: int = 32  # the VAE is convolutional: train it on crops, 4x cheaper than whole images
    vae_lr: float = 1e-3
    # 12,000 steps (1.6 h on two cores, minutes on a GPU): at 4,800 the content LoRAs built on this base gave
    # their subject in 40% of samples (the weakest five), at 12,000 in 77% (issue 3's measurements).
    unet_steps: int = 12000
    batch: int = 24
    lr: float = 5e-4
    warmup: int = 500
    ema: float = 0.9995
    caption_dropout: float = 0.1
    mixed_precision: str = "bf16"  # accelerate's setting: bf16 autocast works on CPUs with bf16 support too
    checkpoint_every: int = 200
    # Min-SNR-gamma loss weighting (Hang et al., 2023): min(SNR, gamma) / SNR per sample, so the many
    # low-noise timesteps stop dominating the gradient; 0 is the plain epsilon loss.
    snr_gamma: float = 5.0


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    return torch.load(path, weights_only=False, map_location="cpu") if path.exists() else None


def _steps_bar(desc: str, start: int, total: int) -> tqdm[int]:
    """Steps start..total with a progress bar, shown by one process of a multi-process run."""
    shown = data_parallel.state().is_local_main_process
    return tqdm(range(start, total), desc=desc, initial=start, total=total, disable=not shown)


def _lr_at(step: int, cfg: BaseConfig, total: int, base_lr: float) -> float:
    if step < cfg.warmup:
        return base_lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, total - cfg.warmup)
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _loss_weights(noise_scheduler: Any, t: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Per-sample weights of the epsilon loss: ones, or min-SNR-gamma."""
    if snr_gamma <= 0:
        return torch.ones(len(t))
    alphas = noise_scheduler.alphas_cumprod[t].float()
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=snr_gamma) / snr


def render_dataset(work: Path, cfg: BaseConfig) -> data.Batch:
    """The UNet's captioned dataset (plain styles)."""
    cache = work / "base_images.npz"
    if cache.exists():
        npz = np.load(cache)
        return data.Batch(npz["images"], list(npz["captions"]))
    images = np.empty((cfg.images, 64, 64, 3), dtype=np.uint8)
    captions = []
    for i in tqdm(range(cfg.images), desc="render base dataset", unit="img"):
        img, caption = data.base_example(cfg.seed, i)
        images[i] = (img * 255 + 0.5).astype(np.uint8)
        captions.append(caption)
    with atomic_file(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, captions=np.array(captions))
    return data.Batch(images.astype(np.float32), captions)


def render_vae_dataset(work: Path, cfg: BaseConfig) -> np.ndarray:
    """The VAE's images (every style), uint8."""
    cache = work / "vae_images.npz"
    if cache.exists():
        return np.load(cache)["images"]
    images = np.empty((cfg.images, 64, 64, 3), dtype=np.uint8)
    for i in tqdm(range(cfg.images), desc="render vae dataset", unit="img"):
        images[i] = (data.vae_example(cfg.seed, i) * 255 + 0.5).astype(np.uint8)
    with atomic_file(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images)
    return images


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if x.max() > 1.5:
        x = x / 255.0
    return x.permute(0, 3, 1, 2) * 2 - 1


def train_vae(work: Path, images: np.ndarray, cfg: BaseConfig) -> Any:
    from accelerate import Accelerator
    from diffusers import AutoencoderKL

    done = work / "vae"
    if (done / "config.json").exists():
        return AutoencoderKL.from_pretrained(done)
    torch.manual_seed(cfg.seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    vae.to(accelerator.device)  # before the optimizer state is loaded, which follows its parameters' device
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
    ckpt_path = work / "vae_ckpt.pt"
    start = 0
    if (ckpt := _load_checkpoint(ckpt_path)) is not None:
        vae.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        start = ckpt["step"]
    opt = accelerator.prepare_optimizer(opt)
    shard = data_parallel.batch_shard(cfg.vae_batch)
    n = len(images)
    bar = _steps_bar("train vae", start, cfg.vae_steps)
    for step in bar:
        rng = np.random.default_rng((cfg.seed, 11, step))
        x = _to_tensor(images[shard.take(rng.integers(0, n, cfg.vae_batch))]).to(accelerator.device)
        if cfg.vae_crop < x.shape[-1]:
            # Crops at multiples of the VAE's 4x downsampling, so latents stay aligned with pixels.
            oy, ox = (int(v) * 4 for v in rng.integers(0, (x.shape[-1] - cfg.vae_crop) // 4 + 1, 2))
            x = x[..., oy : oy + cfg.vae_crop, ox : ox + cfg.vae_crop]
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg, cfg.vae_steps, cfg.vae_lr)
        with accelerator.autocast():
            posterior = vae.encode(x).latent_dist
            g = torch.Generator().manual_seed(cfg.seed * 100003 + step)
            noise = shard.take(torch.randn((cfg.vae_batch, *posterior.mean.shape[1:]), generator=g))
            rec = vae.decode(posterior.mean + posterior.std * noise.to(x.device)).sample
        rec = rec.float()
        loss = (rec - x).abs().mean() + ((rec - x) ** 2).mean() + 1e-6 * posterior.kl().mean()
        opt.zero_grad()
        accelerator.backward(loss * shard.weight)
        data_parallel.average_gradients(vae.parameters())
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 and accelerator.is_main_process:
            _save_checkpoint(ckpt_path, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1})
    if accelerator.is_main_process:
        with atomic_dir(done) as tmp:
            vae.save_pretrained(tmp)
    return vae


@torch.no_grad()
def encode_latents(work: Path, vae: Any, dataset: data.Batch) -> tuple[torch.Tensor, torch.Tensor, float]:
    cache = work / "latents.pt"
    if cache.exists():
        c = torch.load(cache)
        return c["mean"], c["std"], c["scale"]
    means, stds = [], []
    vae.eval()
    for i in tqdm(range(0, len(dataset.images), 256), desc="encode latents"):
        dist = vae.encode(_to_tensor(dataset.images[i : i + 256])).latent_dist
        means.append(dist.mean.half())
        stds.append(dist.std.half())
    mean, std = torch.cat(means), torch.cat(stds)
    scale = float(1.0 / (mean.float() + std.float() * torch.randn(mean.shape)).std())
    with atomic_file(cache) as tmp:
        torch.save({"mean": mean, "std": std, "scale": scale}, tmp)
    return mean, std, scale


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    return torch.as_tensor(
        tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    )


def train_unet(
    work: Path, tokenizer: Any, dataset: data.Batch, latents: tuple[torch.Tensor, torch.Tensor, float], cfg: BaseConfig
) -> tuple[Any, Any]:
    from accelerate import Accelerator
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    mean, std, scale = latents
    torch.manual_seed(cfg.seed + 1)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(**text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)))
    ema = {f"unet.{k}": v.detach().clone() for k, v in unet.state_dict().items()}
    ema.update({f"text.{k}": v.detach().clone() for k, v in text.state_dict().items()})
    params = list(unet.parameters()) + list(text.parameters())
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    unet.to(accelerator.device)  # before the optimizer state is loaded, which follows its parameters' device
    text.to(accelerator.device)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    ckpt_path = work / "unet_ckpt.pt"
    start = 0
    if (ckpt := _load_checkpoint(ckpt_path)) is not None:
        unet.load_state_dict(ckpt["unet"])
        text.load_state_dict(ckpt["text"])
        opt.load_state_dict(ckpt["opt"])
        ema = ckpt["ema"]
        start = ckpt["step"]
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=SCHEDULER_CONFIG["num_train_timesteps"],
        beta_start=SCHEDULER_CONFIG["beta_start"],
        beta_end=SCHEDULER_CONFIG["beta_end"],
        beta_schedule=SCHEDULER_CONFIG["beta_schedule"],
    )
    ids = tokenize(tokenizer, dataset.captions)
    empty = tokenize(tokenizer, [""])[0]
    use_classic_attention(unet)  # faster backward on CPU (see its docstring)
    use_classic_attention(text)
    opt = accelerator.prepare_optimizer(opt)
    shard = data_parallel.batch_shard(cfg.batch)
    ema = {k: v.to(accelerator.device) for k, v in ema.items()}  # next to the weights it averages
    # state_dict() tensors share storage with the live weights, so these lists stay current after each step.
    ema_tensors, live = [], []
    for prefix, model in (("unet.", unet), ("text.", text)):
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                ema_tensors.append(ema[prefix + k])
                live.append(v)
    n = len(ids)
    bar = _steps_bar("train unet+text", start, cfg.unet_steps)
    losses: list[float] = []
    for step in bar:
        # The global batch, from the seed and the step; this process trains on its shard of it.
        rng = np.random.default_rng((cfg.seed, 13, step))
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch))
        g = torch.Generator().manual_seed(cfg.seed * 1000003 + step)
        z = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=g)) * scale
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (cfg.batch,), generator=g)
        batch_ids = ids[idx].clone()
        batch_ids[torch.from_numpy(rng.random(cfg.batch) < cfg.caption_dropout)] = empty
        noisy = noise_scheduler.add_noise(z, noise, t)
        noisy, noise, t, batch_ids = (shard.take(v).to(accelerator.device) for v in (noisy, noise, t, batch_ids))
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg, cfg.unet_steps, cfg.lr)
        with accelerator.autocast():
            enc = text(batch_ids)[0]
            pred = unet(noisy, t, enc).sample
        per_sample = ((pred.float() - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (per_sample * _loss_weights(noise_scheduler, t.cpu(), cfg.snr_gamma).to(per_sample.device)).mean()
        opt.zero_grad()
        accelerator.backward(loss * shard.weight)
        data_parallel.average_gradients(params)
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))
            # ema = decay * ema + (1 - decay) * w, as one fused call over all tensors.
            torch._foreach_lerp_(ema_tensors, live, 1 - decay)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        last = step + 1 == cfg.unet_steps
        if ((step + 1) % cfg.checkpoint_every == 0 or last) and accelerator.is_main_process:
            _save_checkpoint(
                ckpt_path,
                {
                    "unet": unet.state_dict(),
                    "text": text.state_dict(),
                    "opt": opt.state_dict(),
                    "ema": ema,
                    "step": step + 1,
                },
            )
    unet.load_state_dict({k[5:]: v for k, v in ema.items() if k.startswith("unet.")})
    text.load_state_dict({k[5:]: v for k, v in ema.items() if k.startswith("text.")})
    return unet, text


def train_base(out: Path, work: Path, cfg: BaseConfig | None = None) -> dict[str, Any]:
    """Trains the base family into out/ (a StableDiffusionPipeline folder); returns the stage's facts."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    cfg = cfg or BaseConfig()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    tok_dir = work / "tokenizer"
    processes = data_parallel.state()
    # The main process writes each cache first; the others then read it.
    with processes.main_process_first():
        if processes.is_main_process:
            write_tokenizer(tok_dir)
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
        vae_images = render_vae_dataset(work, cfg)
    vae = train_vae(work, vae_images, cfg)
    with processes.main_process_first():
        dataset = render_dataset(work, cfg)
        latents = encode_latents(work, vae, dataset)
    vae.register_to_config(scaling_factor=latents[2])
    unet, text = train_unet(work, tokenizer, dataset, latents, cfg)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    facts = {
        "config": asdict(cfg),
        "latent_scale": latents[2],
        "seconds": round(time.time() - started, 1),
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "text_params": sum(p.numel() for p in text.parameters()),
        "vae_params": sum(p.numel() for p in vae.parameters()),
    }
    if processes.is_main_process:
        with atomic_dir(out) as tmp:
            pipe.save_pretrained(tmp, safe_serialization=True)
            # transformers 5 saves only tokenizer.json; SD checkpoints (and the native tokenizer) use CLIP's
            # vocab.json + merges.txt, which CLIPTokenizer also loads: ship those.
            shutil.rmtree(tmp / "tokenizer")
            write_tokenizer(tmp / "tokenizer")
        (work / "base_facts.json").write_text(json.dumps(facts, indent=2))
    processes.wait_for_everyone()
    return facts
