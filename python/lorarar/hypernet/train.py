"""Training the LoRA.rar hypernetwork with the ZipLoRA objective, and ZipLoRA's own per-pair optimisation.

For a (content, style) pair and coefficients m from the hypernetwork (or, for ZipLoRA, free parameters):

    L = || eps_merged(z_c, t | p_c) - eps_content(z_c, t | p_c) ||^2
      + || eps_merged(z_s, t | p_s) - eps_style(z_s, t | p_s) ||^2
      + lambda * sum_layers |cos(m_c, m_s)|

z_c, p_c: a content training image (noised) and its prompt; z_s, p_s: the style image and its prompt; the two
branches share the noise and the timestep. Pairs are drawn from the train split; checkpoints are selected on val.

The world also knows what every merge should look like, which no public benchmark does, so a second objective is
offered (``objective="ground-truth"``): the plain denoising loss of the merged UNet on renders of the train pair's
subject in its style, under the merged prompt,

    L = || eps_merged(z_cs, t | p_cs) - eps ||^2 + lambda * sum_layers |cos(m_c, m_s)|

and their sum (``"ziplora+ground-truth"``). The hypernetwork still sees only the two LoRAs' weights; the renders are
a training signal for train pairs only. ``proximity`` adds mu * mean (m - 1)^2, which keeps merges near the sum.

``objective="oracle"`` distils instead of optimising: each train (and val) pair first gets its oracle, coefficients
fitted to that pair's renders by ZipLoRA's optimiser on the ground-truth loss (``fit_coefficients``: from 1, 100 Adam
steps at lr 0.01, lambda 0; what ``benchmarks/merge_headroom.py`` measures as the oracle), and the hypernetwork
regresses them,

    L = mean_layers ( mean (m_c - o_c)^2 + mean (m_s - o_s)^2 ) / 2

over ``batch`` pairs a step (lambda does not apply; the oracles are cached per pair in the work folder). The short
optimisation from the sum keeps the oracle near it, so the hypernetwork is not taught to drop a LoRA, which both
losses above reward.

Which layers the hypernetwork merges is configured (``merged``); the rest are summed. The README (LoRA.rar) has what
each variant measured. Under ``accelerate launch`` / ``torchrun`` the processes share each step's images (or pairs),
the validation pairs and the oracle fits (lorarar.data_parallel): the same hypernetwork, sooner.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lorarar import data_parallel
from lorarar.data_parallel import Shard
from lorarar.errors import LoraError
from lorarar.export.graph_forms import use_classic_attention
from lorarar.formats.atomic import atomic_dir, atomic_file
from lorarar.hypernet import slots
from lorarar.hypernet.model import HyperNet, HyperNetConfig
from lorarar.merge.reference import Factors, read_factors
from lorarar.world import catalog
from lorarar.world.train_base import _to_tensor, tokenize
from lorarar.world.train_lora import training_images


@dataclass
class HyperTrainConfig:
    seed: int = 0
    steps: int = 3000
    batch: int = 4
    lr: float = 1e-3
    lam: float = 0.01
    val_every: int = 250
    val_pairs: int = 16
    checkpoint_every: int = 100
    mixed_precision: str = "bf16"
    objective: str = "ziplora"  # one of OBJECTIVES (see the module docstring)
    merged: tuple[str, ...] = ("to_q", "to_out.0")  # layers the hypernetwork merges; the others are summed
    # Weight of the mean of (m - 1)^2 over the merged columns: keeps the merge near the sum (0: as published).
    proximity: float = 0.0
    train_scope: str = "library"  # catalog.TRAIN_SCOPES: the library's 8 x 8 train pairs, or all 16 x 16
    oracle_steps: int = 100  # objective "oracle": Adam steps of each pair's oracle fit


OBJECTIVES = ("ziplora", "ground-truth", "ziplora+ground-truth", "oracle")
GROUND_TRUTH_SEED = 4242  # the renders the ground-truth objective trains on (the metrics use other seeds)
GROUND_TRUTH_IMAGES = 32


class PairWorld:
    """The frozen base UNet with LoRA slots, and each library LoRA's factors, latents and prompt embedding."""

    def __init__(self, root: Path | None = None, names: list[str] | None = None, scope: str = "library") -> None:
        from diffusers import DDPMScheduler, StableDiffusionPipeline

        from lorarar import LoraFile

        paths = catalog.paths(root)
        pipe = StableDiffusionPipeline.from_pretrained(paths.pipeline, torch_dtype=torch.float32)
        self.unet = pipe.unet.requires_grad_(False).eval()
        use_classic_attention(self.unet)  # faster backward on CPU (see its docstring)
        self.targets = slots.install_slots(self.unet)
        self.noise = DDPMScheduler.from_config(pipe.scheduler.config)
        self.scale = float(pipe.vae.config.scaling_factor)
        self.pipe = pipe
        # (content, style) -> latent mean, latent std of its ground-truth renders, the merged prompt's encoding
        self.truth: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.factors: dict[str, dict[str, Factors]] = {}
        self.latents: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.embeddings: dict[str, torch.Tensor] = {}
        subjects = catalog.library_subjects(scope)
        styles = catalog.library_styles(scope)
        jobs = [("content", s) for s in subjects] + [("style", s) for s in styles]
        for kind, name in jobs:
            if names is not None and name not in names:
                continue
            path = paths.content_lora(name) if kind == "content" else paths.style_lora(name)
            if not path.is_file():
                raise LoraError(
                    f"{path}: no such file (train it: lorarar world train --stage loras --train-scope {scope} "
                    f"--out {paths.root})",
                    4,
                )
            self.factors[name] = read_factors(LoraFile.load(str(path)))
            images, prompt = training_images(kind, name)
            with torch.no_grad():
                dist = pipe.vae.encode(_to_tensor(images)).latent_dist
                self.latents[name] = (dist.mean, dist.std)
                self.embeddings[name] = pipe.text_encoder(tokenize(pipe.tokenizer, [prompt]))[0]

    def merged_modules(self, config: HyperNetConfig) -> list[str]:
        return [m for m in self.targets if config.is_merged(m)]

    def sample_latents(self, name: str, count: int, g: torch.Generator) -> torch.Tensor:
        return self._sample(self.latents[name], count, g)

    def _sample(self, dist: tuple[torch.Tensor, torch.Tensor], count: int, g: torch.Generator) -> torch.Tensor:
        mean, std = dist
        idx = torch.randint(0, len(mean), (count,), generator=g)
        return (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)) * self.scale

    @torch.no_grad()
    def _truth(self, content: str, style: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latents of the pair's ground-truth renders and the merged prompt's encoding (cached per pair)."""
        from lorarar.world import data

        key = (content, style)
        if key not in self.truth:
            images = data.ground_truth(content, style, GROUND_TRUTH_SEED, GROUND_TRUTH_IMAGES)
            dist = self.pipe.vae.encode(_to_tensor(images)).latent_dist
            prompt = catalog.merged_prompt(content)
            encoding = self.pipe.text_encoder(tokenize(self.pipe.tokenizer, [prompt]))[0]
            self.truth[key] = (dist.mean, dist.std, encoding)
        return self.truth[key]

    def truth_batch(
        self, content: str, style: str, count: int, g: torch.Generator, shard: Shard | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timesteps, merged prompt encodings, noise) of `count` renders of the pair (of the shard's
        part of them: drawn whole, then sliced, so that the draws do not depend on the number of processes)."""
        mean, std, encoding = self._truth(content, style)
        z = self._sample((mean, std), count, g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (count,), generator=g)
        shard = shard or data_parallel.whole(count)
        x, noise, t = (shard.take(v) for v in (self.noise.add_noise(z, noise, t), noise, t))
        return x, t, encoding.expand(len(t), -1, -1), noise

    def truth_objective(
        self,
        content: str,
        style: str,
        coefficients: slots.Coefficients,
        count: int,
        g: torch.Generator,
        lam: float,
        split: Callable[[int], Shard] = data_parallel.whole,
    ) -> torch.Tensor:
        """The ground-truth loss for one pair with `count` renders of it (see the module docstring); ``split``: this
        process's shard of a batch (data_parallel.batch_shard under several processes)."""
        shard = split(count)
        x, t, e, noise = self.truth_batch(content, style, count, g, shard)
        slots.set_adapter(self.unet, slots.fold(self.factors[content], self.factors[style], coefficients))
        pred = self.unet(x, t, e).sample
        slots.set_adapter(self.unet, None)
        return ((pred - noise) ** 2).mean() * shard.weight + lam * slots.cosine_penalty(coefficients)

    def loss(
        self,
        objective: str,
        content: str,
        style: str,
        coefficients: slots.Coefficients,
        count: int,
        g: torch.Generator,
        lam: float,
        proximity: float = 0.0,
        split: Callable[[int], Shard] = data_parallel.whole,
    ) -> torch.Tensor:
        """An objective plus ``proximity`` * mean (m - 1)^2. ``count`` images per ZipLoRA branch; the ground-truth
        loss gets as many merged-UNet images (2 count). ``split``: see truth_objective."""
        if objective == "ground-truth":
            loss = self.truth_objective(content, style, coefficients, 2 * count, g, lam, split)
        elif objective == "ziplora+ground-truth":
            truth = self.truth_objective(content, style, coefficients, 2 * count, g, 0.0, split)
            loss = self.objective(content, style, coefficients, count, g, lam, split=split) + truth
        else:
            loss = self.objective(content, style, coefficients, count, g, lam, split=split)
        return loss + proximity * proximity_penalty(coefficients) if proximity else loss

    def objective(
        self,
        content: str,
        style: str,
        coefficients: slots.Coefficients,
        count: int,
        g: torch.Generator,
        lam: float,
        split: Callable[[int], Shard] = data_parallel.whole,
    ) -> torch.Tensor:
        """The ZipLoRA loss for one pair with `count` images per branch (shared noise and timesteps); ``split``: see
        truth_objective."""
        z_c = self.sample_latents(content, count, g)
        z_s = self.sample_latents(style, count, g)
        noise = torch.randn(z_c.shape, generator=g)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (count,), generator=g)
        shard = split(count)
        x_c, x_s = shard.take(self.noise.add_noise(z_c, noise, t)), shard.take(self.noise.add_noise(z_s, noise, t))
        t = shard.take(t)
        count = len(t)
        e_c = self.embeddings[content].expand(count, -1, -1)
        e_s = self.embeddings[style].expand(count, -1, -1)
        with torch.no_grad():
            slots.set_adapter(self.unet, slots.single(self.factors[content]))
            target_c = self.unet(x_c, t, e_c).sample
            slots.set_adapter(self.unet, slots.single(self.factors[style]))
            target_s = self.unet(x_s, t, e_s).sample
        slots.set_adapter(self.unet, slots.fold(self.factors[content], self.factors[style], coefficients))
        pred = self.unet(torch.cat([x_c, x_s]), torch.cat([t, t]), torch.cat([e_c, e_s])).sample
        slots.set_adapter(self.unet, None)
        mse = ((pred[:count] - target_c) ** 2).mean() + ((pred[count:] - target_s) ** 2).mean()
        return mse * shard.weight + lam * slots.cosine_penalty(coefficients)


def hypernet_coefficients(
    hypernet: HyperNet, content: dict[str, Factors], style: dict[str, Factors], modules: list[str]
) -> slots.Coefficients:
    """(m_c, m_s) for every merged layer both LoRAs have, by the low-rank evaluation."""
    out: slots.Coefficients = {}
    for name in modules:
        if name not in content or name not in style:
            continue
        c, s = content[name], style[name]
        m = hypernet.forward_lowrank(c.down * c.scale, c.up, s.down * s.scale, s.up)
        out[name] = (m[0], m[1])
    return out


def proximity_penalty(coefficients: slots.Coefficients) -> torch.Tensor:
    """Mean of (m - 1)^2 over every merged column of both LoRAs: 0 at the direct sum."""
    terms = [torch.cat([c, s]).sub(1).square().mean() for c, s in coefficients.values()]
    return torch.stack(terms).mean() if terms else torch.zeros(())


def pair_oracles(
    world: PairWorld, pairs: list[tuple[str, str]], layers: tuple[str, ...], steps: int, cache: Path
) -> dict[tuple[str, str], slots.Coefficients]:
    """Objective "oracle": each pair's coefficients fitted to its ground-truth renders (see the module docstring).
    Saved in ``cache`` under a key of the layers, the steps and the two LoRAs' factors, so an interrupted run resumes
    and a retrained LoRA is fitted again."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for content, style in pairs:
        digest = hashlib.sha256(f"{','.join(layers)}@{steps}".encode())
        for name in (content, style):
            for module in sorted(world.factors[name]):
                f = world.factors[name][module]
                digest.update(module.encode() + f.down.numpy().tobytes() + f.up.numpy().tobytes())
        paths[(content, style)] = cache / f"{content}+{style}-{digest.hexdigest()[:16]}.pt"
    # Several processes deal the missing fits out (each fit is one process's job), all agreeing on what is missing
    # before any of them writes.
    processes = data_parallel.state()
    missing = [pair for pair, path in paths.items() if not path.exists()]
    processes.wait_for_everyone()
    for content, style in tqdm(data_parallel.my_share(missing), desc="fit oracles", disable=not missing):
        fitted = fit_coefficients(world, content, style, "ground-truth", layers, steps=steps, lam=0.0, batch=4)
        with atomic_file(paths[(content, style)]) as tmp:
            torch.save(fitted, tmp)
    processes.wait_for_everyone()
    return {pair: torch.load(path) for pair, path in paths.items()}


def oracle_loss(coefficients: slots.Coefficients, oracle: slots.Coefficients) -> torch.Tensor:
    """Mean over layers of (mean (m_c - o_c)^2 + mean (m_s - o_s)^2) / 2."""
    terms = [((c - oracle[k][0]) ** 2).mean() + ((s - oracle[k][1]) ** 2).mean() for k, (c, s) in coefficients.items()]
    return torch.stack(terms).mean() / 2


def new_hypernet(world: PairWorld, seed: int, merged: tuple[str, ...] = ("to_q", "to_out.0")) -> HyperNet:
    """Widths from the merged layers; the output starts at m = 1 (the direct sum), as ZipLoRA's merger does."""
    torch.manual_seed(seed)
    probe = HyperNetConfig(widths=(), merged=merged)
    widths = sorted({world.unet.get_submodule(m).base.out_features for m in world.merged_modules(probe)})
    model = HyperNet(HyperNetConfig(widths=tuple(widths), merged=merged))
    with torch.no_grad():
        model.output.weight.mul_(0.01)
        model.output.bias.fill_(1.0)
    return model


@torch.no_grad()
def validation_loss(
    world: PairWorld,
    hypernet: HyperNet,
    pairs: list[tuple[str, str]],
    lam: float,
    objective: str = "ziplora",
    proximity: float = 0.0,
) -> float:
    modules = world.merged_modules(hypernet.config)

    def pair_loss(job: tuple[int, tuple[str, str]]) -> float:
        i, (c, s) = job
        g = torch.Generator().manual_seed(12345 + i)
        coeffs = hypernet_coefficients(hypernet, world.factors[c], world.factors[s], modules)
        return float(world.loss(objective, c, s, coeffs, 4, g, lam, proximity))

    return data_parallel.mean_of_jobs(list(enumerate(pairs)), pair_loss)  # several processes share the pairs out


def train_hypernet(
    out: Path, work: Path, cfg: HyperTrainConfig | None = None, root: Path | None = None, world: PairWorld | None = None
) -> dict[str, Any]:
    from accelerate import Accelerator

    cfg = cfg or HyperTrainConfig()
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {cfg.objective!r} ({', '.join(OBJECTIVES)})")
    if cfg.objective == "oracle" and cfg.proximity:
        raise ValueError("the oracle objective takes no proximity term (its targets already start from the sum)")
    started = time.time()
    train_pairs = catalog.pairs("train", cfg.train_scope)
    world = world or PairWorld(root, scope=cfg.train_scope)
    lacking = sorted({n for pair in train_pairs for n in pair} - set(world.factors))
    if lacking:
        raise ValueError(f"the pair world has no LoRA for {', '.join(lacking)} (train scope {cfg.train_scope!r})")
    hypernet = new_hypernet(world, cfg.seed, cfg.merged)
    opt = torch.optim.AdamW(hypernet.parameters(), lr=cfg.lr, weight_decay=1e-4)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / "hypernet_ckpt.pt"
    start, best, history = 0, float("inf"), []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        hypernet.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        start, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    opt = accelerator.prepare_optimizer(opt)
    model = hypernet
    main = accelerator.is_main_process
    val_pairs = catalog.pairs("val")[: cfg.val_pairs]
    modules = world.merged_modules(model.config)
    oracles = (
        pair_oracles(world, train_pairs + val_pairs, cfg.merged, cfg.oracle_steps, work / "oracles")
        if cfg.objective == "oracle"
        else {}
    )

    def predict(content: str, style: str) -> slots.Coefficients:
        return hypernet_coefficients(model, world.factors[content], world.factors[style], modules)

    bar = tqdm(range(start, cfg.steps), desc="train hypernet", initial=start, total=cfg.steps, disable=not main)
    losses: list[float] = []
    for step in bar:
        rng = np.random.default_rng((cfg.seed, 17, step))
        with accelerator.autocast():
            if oracles:
                shard = data_parallel.batch_shard(cfg.batch)
                picks = shard.take([train_pairs[int(i)] for i in rng.integers(len(train_pairs), size=cfg.batch)])
                loss = torch.stack([oracle_loss(predict(c, s), oracles[(c, s)]) for c, s in picks]).mean()
                loss = loss * shard.weight
            else:
                content, style = train_pairs[int(rng.integers(len(train_pairs)))]
                g = torch.Generator().manual_seed(cfg.seed * 1000003 + step)
                coeffs = predict(content, style)
                loss = world.loss(
                    cfg.objective,
                    content,
                    style,
                    coeffs,
                    cfg.batch,
                    g,
                    cfg.lam,
                    cfg.proximity,
                    data_parallel.batch_shard,
                )
        opt.zero_grad()
        accelerator.backward(loss)
        data_parallel.average_gradients(model.parameters())
        opt.step()
        losses.append(data_parallel.mean_over_processes(float(loss)))  # the global batch's loss
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.val_every == 0 or last:
            if oracles:
                with torch.no_grad():
                    val = data_parallel.mean_of_jobs(
                        val_pairs, lambda pair: float(oracle_loss(predict(*pair), oracles[pair]))
                    )
            else:
                val = validation_loss(world, model, val_pairs, cfg.lam, cfg.objective, cfg.proximity)
            history.append({"step": step + 1, "train": float(np.mean(losses[-cfg.val_every :])), "val": val})
            if val < best:
                best = val
                if main:
                    with atomic_dir(work / "best") as tmp:
                        model.save(tmp)
        if ((step + 1) % cfg.checkpoint_every == 0 or last) and main:
            with atomic_file(ckpt_path) as tmp:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "step": step + 1,
                        "best": best,
                        "history": history,
                    },
                    tmp,
                )
    accelerator.wait_for_everyone()  # the main process has written best/
    best_model = HyperNet.load(work / "best")
    facts = {
        "config": asdict(cfg),
        "history": history,
        "best_val": best,
        "params": sum(p.numel() for p in best_model.parameters()),
        "seconds": round(time.time() - started, 1),
    }
    if main:
        with atomic_dir(out) as tmp:
            best_model.save(tmp)
            (tmp / "training.json").write_text(json.dumps(facts, indent=2))
    accelerator.wait_for_everyone()
    return facts


def fit_coefficients(
    world: PairWorld,
    content: str,
    style: str,
    objective: str = "ziplora",
    layers: tuple[str, ...] | None = None,
    steps: int = 100,
    lr: float = 0.01,
    lam: float = 0.01,
    batch: int = 4,
    seed: int = 0,
) -> slots.Coefficients:
    """Per-pair optimisation of one coefficient vector per layer and LoRA, starting from 1 (the sum), with Adam on
    an objective (see PairWorld.loss); `layers`: leaf names to fit (default every target), the others summed."""
    c, s = world.factors[content], world.factors[style]
    config = HyperNetConfig(widths=(), merged=layers) if layers else None
    params = {
        name: (
            torch.ones(c[name].down.shape[1], requires_grad=True),
            torch.ones(s[name].down.shape[1], requires_grad=True),
        )
        for name in world.targets
        if name in c and name in s and (config is None or config.is_merged(name))
    }
    opt = torch.optim.Adam([p for pair in params.values() for p in pair], lr=lr)
    for step in range(steps):
        g = torch.Generator().manual_seed(seed * 1000003 + step)
        loss = world.loss(objective, content, style, params, batch, g, lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {name: (mc.detach(), ms.detach()) for name, (mc, ms) in params.items()}


def ziplora_coefficients(world: PairWorld, content: str, style: str, seed: int = 0) -> slots.Coefficients:
    """ZipLoRA as published: every layer, 100 Adam steps at lr 0.01, lambda 0.01, on the ZipLoRA objective."""
    return fit_coefficients(world, content, style, "ziplora", steps=100, lr=0.01, lam=0.01, batch=4, seed=seed)
