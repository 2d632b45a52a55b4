"""Stage "metrics": recognition networks that score generated images against the world's ground truth.

- Subject classifier (24 named subjects) and style classifier (24 named styles): small CNNs trained on renders
  with random poses, passed through the world's VAE (so they see the artifacts generated images have) and
  augmented with blur, noise and colour jitter. Held-out render accuracy is measured and recorded.
- Scores of a set of generated images for a (content, style) pair: content fidelity (share recognised as the
  subject), style fidelity (share in the style), both-correct rate (the analogue of the paper's MLLM "both
  correct"), and the distance between the classifiers' features of the generated set and of ground-truth renders.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lorarar import data_parallel
from lorarar.formats.atomic import atomic_file
from lorarar.world import catalog, data
from lorarar.world.render import Pose, render
from lorarar.world.styles import NAMED_STYLES, random_style
from lorarar.world.subjects import NAMED_SUBJECT_PARAMS, named_subject, random_instance

SUBJECTS = tuple(NAMED_SUBJECT_PARAMS)
STYLES = tuple(NAMED_STYLES)


class Classifier(nn.Module):
    """64x64 RGB -> class logits; `features` is the pooled 128-d embedding."""

    def __init__(self, classes: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128))
        self.head = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class MetricsConfig:
    seed: int = 0
    train_images: int = 12000
    test_images: int = 1200
    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3


def _example(kind: str, seed: int, index: int) -> tuple[np.ndarray, int]:
    """A render labelled by subject (kind "subject") or by style (kind "style")."""
    rng = np.random.default_rng((seed, 31, index))
    if kind == "subject":
        label = int(rng.integers(len(SUBJECTS)))
        style = NAMED_STYLES[STYLES[int(rng.integers(len(STYLES)))]] if rng.random() < 0.5 else random_style(rng)
        return render(named_subject(SUBJECTS[label]), style, Pose.random(rng)), label
    label = int(rng.integers(len(STYLES)))
    cls = data.CLASS_NAMES[int(rng.integers(len(data.CLASS_NAMES)))]
    subject = (
        named_subject(SUBJECTS[int(rng.integers(len(SUBJECTS)))]) if rng.random() < 0.5 else random_instance(cls, rng)
    )
    return render(subject, NAMED_STYLES[STYLES[label]], Pose.random(rng)), label


@torch.no_grad()
def vae_roundtrip(vae: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2) * 2 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        out.append(((rec.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    gain = 1 + 0.15 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    x = (x * gain + 0.05 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)).clamp(0, 1)
    blur = torch.rand(n, generator=g) < 0.3
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        x[blur] = torch.nn.functional.conv2d(x[blur], k, padding=1, groups=3)
    return (x + 0.03 * torch.rand(n, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _prep(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images, dtype=np.float32))
    return (x.permute(0, 3, 1, 2) - 0.5) / 0.25


def train_classifier(kind: str, vae: Any, cfg: MetricsConfig) -> tuple[Classifier, float]:
    classes = len(SUBJECTS) if kind == "subject" else len(STYLES)
    pairs = [
        _example(kind, cfg.seed, i) for i in tqdm(range(cfg.train_images + cfg.test_images), desc=f"render {kind} set")
    ]
    images = np.stack([p[0] for p in pairs])
    labels = torch.tensor([p[1] for p in pairs])
    # Half the training set goes through the VAE, like generated images do; the test set all does.
    rt = vae_roundtrip(vae, images[cfg.train_images // 2 :])
    images[cfg.train_images // 2 :] = rt
    train_x, test_x = torch.from_numpy(images[: cfg.train_images]), torch.from_numpy(images[cfg.train_images :])
    train_y, test_y = labels[: cfg.train_images], labels[cfg.train_images :]
    torch.manual_seed(cfg.seed)
    model = Classifier(classes)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    bar = tqdm(range(cfg.steps), desc=f"train {kind} classifier")
    for _step in bar:
        idx = torch.randint(0, cfg.train_images, (cfg.batch,), generator=g)
        x = _augment(train_x[idx].permute(0, 3, 1, 2).clone(), g).permute(0, 2, 3, 1)
        loss = nn.functional.cross_entropy(model(_prep(x)), train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(_prep(test_x[i : i + 256])).argmax(1) for i in range(0, len(test_x), 256)])
    return model, float((pred == test_y).float().mean())


def train_metrics(root: Path, cfg: MetricsConfig | None = None) -> dict[str, Any]:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    cfg = cfg or MetricsConfig()
    paths = catalog.paths(root)
    started = time.time()
    vae = AutoencoderKL.from_pretrained(paths.pipeline / "vae", torch_dtype=torch.float32)
    facts: dict[str, Any] = {"config": asdict(cfg)}
    paths.metrics.mkdir(parents=True, exist_ok=True)
    accuracies = []
    # Several processes (accelerate launch / torchrun) train the two classifiers at once, one each.
    for kind in data_parallel.my_share(("subject", "style")):
        model, accuracy = train_classifier(kind, vae, cfg)
        with atomic_file(paths.metrics / f"{kind}_classifier.safetensors") as tmp:
            save_file(
                {k: v.half().contiguous() for k, v in model.state_dict().items() if v.is_floating_point()},
                str(tmp),
                metadata={
                    "labels": json.dumps(SUBJECTS if kind == "subject" else STYLES),
                    "heldout_accuracy": f"{accuracy:.4f}",
                },
            )
        accuracies.append((kind, accuracy))
    gathered = dict(data_parallel.gather_lists(accuracies))  # a collective: both classifiers are written
    for kind in ("subject", "style"):
        facts[f"{kind}_heldout_accuracy"] = gathered[kind]
    facts["seconds"] = round(time.time() - started, 1)
    return facts


class Scorer:
    """Loads the two classifiers and scores sets of images."""

    def __init__(self, root: Path | None = None) -> None:
        from safetensors.torch import load_file

        paths = catalog.paths(root)
        self.models: dict[str, Classifier] = {}
        for kind, n in (("subject", len(SUBJECTS)), ("style", len(STYLES))):
            model = Classifier(n)
            state = load_file(str(paths.metrics / f"{kind}_classifier.safetensors"))
            missing = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
            assert not missing.unexpected_keys and all("num_batches" in k for k in missing.missing_keys)
            self.models[kind] = model.eval()

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = _prep(images)
        return {kind: model(x).argmax(1).numpy() for kind, model in self.models.items()}

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        x = _prep(images)
        return torch.cat([m.features(x) for m in self.models.values()], dim=1).numpy()

    def score(self, images: np.ndarray, content: str | None, style: str | None, seed: int = 0) -> dict[str, Any]:
        pred = self.predict(images)
        out: dict[str, Any] = {"n": len(images)}
        content_ok = pred["subject"] == SUBJECTS.index(content) if content else np.ones(len(images), bool)
        style_ok = pred["style"] == STYLES.index(style) if style else np.ones(len(images), bool)
        if content:
            out["content_fidelity"] = float(content_ok.mean())
        if style:
            out["style_fidelity"] = float(style_ok.mean())
        if content and style:
            out["both_correct"] = float((content_ok & style_ok).mean())
            truth = data.ground_truth(content, style, seed, 32)
            out["feature_distance"] = float(
                np.linalg.norm(self.features(images).mean(0) - self.features(truth).mean(0))
            )
        out["predicted_subjects"] = [SUBJECTS[i] for i in pred["subject"]]
        out["predicted_styles"] = [STYLES[i] for i in pred["style"]]
        return out
