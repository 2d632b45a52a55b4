"""The embedded default world: renderer, catalogue, tokenizer, training code paths, committed artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lorarar.cli.main import main
from lorarar.world import catalog, data
from lorarar.world.render import Pose, render
from lorarar.world.styles import NAMED_STYLES, random_style
from lorarar.world.subjects import NAMED_SUBJECT_PARAMS, named_subject, random_instance

WORLD = catalog.paths()


def test_renderer_is_deterministic_and_draws_the_subject() -> None:
    pose = Pose(dx=2, dy=-1, scale=0.9, angle=5, flip=True, seed=3)
    a = render(named_subject("gizmo"), NAMED_STYLES["moss"], pose)
    b = render(named_subject("gizmo"), NAMED_STYLES["moss"], pose)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    for seed in range(3):
        x = data.base_example(7, seed)
        y = data.base_example(7, seed)
        assert np.array_equal(x[0], y[0]) and x[1] == y[1]
    # The subject covers a sensible share of the frame, and the pose moves it.
    style = NAMED_STYLES["tangerine"]
    img = render(named_subject("cottage"), style, Pose())
    body = np.abs(img - np.array(style.primary)).sum(-1) < 0.05
    assert 0.05 < body.mean() < 0.6
    moved = render(named_subject("cottage"), style, Pose(dx=6))
    assert not np.array_equal(img, moved)


def test_named_subjects_differ_and_random_instances_avoid_them() -> None:
    style = NAMED_STYLES["blueprint"]
    renders = {name: render(named_subject(name), style, Pose()) for name in NAMED_SUBJECT_PARAMS}
    names = list(renders)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(renders[a] - renders[b]).mean() > 0.01, (a, b)
    rng = np.random.default_rng(0)
    for cls in data.CLASS_NAMES:
        inst = random_instance(cls, rng)
        assert inst.cls == cls
        assert all(inst.parts != named_subject(n).parts for n, (c, _) in NAMED_SUBJECT_PARAMS.items() if c == cls)
    assert random_style(rng).name == "random"


def test_catalogue_splits() -> None:
    catalog.assert_splits_disjoint()
    assert len(NAMED_SUBJECT_PARAMS) >= 24 and len(NAMED_STYLES) >= 24
    assert len(catalog.pairs("test")) == 16
    assert catalog.merged_prompt("pip") == "a sks bird in zwz style"


def test_tokenizer_keeps_caption_words_whole(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    from lorarar.world.tokenizer import WORDS, write_tokenizer

    write_tokenizer(tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    for word in WORDS:
        assert tok.tokenize(word) == [word + "</w>"]
    ids = tok("a sks robot in zwz style", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id and ids[7] == tok.eos_token_id


def test_world_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["world", "list", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["subjects"]["test"] == list(catalog.SUBJECT_SPLITS["test"])
    assert info["content_loras"]["pip"].endswith("models/default/loras/content/pip.safetensors")


def test_training_code_paths_run(tmp_path: Path) -> None:
    """Every stage on a toy budget (seconds): the code the full run uses, end to end."""
    from lorarar.world.metrics import MetricsConfig, Scorer, train_metrics
    from lorarar.world.train_base import BaseConfig, train_base
    from lorarar.world.train_lora import LoraConfig, train_loras

    root = tmp_path / "world"
    facts = train_base(
        catalog.paths(root).pipeline,
        tmp_path / "work",
        BaseConfig(images=64, vae_steps=2, vae_batch=4, unet_steps=2, batch=4, checkpoint_every=1),
    )
    assert facts["unet_params"] > 1e6
    train_loras(
        root, LoraConfig(content_steps=1, style_steps=1, prior_images=8, content_images=2), only=["pip", "ember"]
    )
    assert catalog.paths(root).content_lora("pip").exists() and catalog.paths(root).style_lora("ember").exists()
    train_metrics(root, MetricsConfig(train_images=64, test_images=16, steps=2, batch=8))
    scores = Scorer(root).score(data.ground_truth("pip", "ember", 0, 4), "pip", "ember")
    assert set(scores) >= {"content_fidelity", "style_fidelity", "both_correct", "feature_distance"}


def test_base_training_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """UNet + text training interrupted after its first checkpoint and started again ends with the same weights
    (EMA included) as a run that was never interrupted."""
    from transformers import CLIPTokenizer

    from lorarar.world import train_base as tb
    from lorarar.world.tokenizer import write_tokenizer

    write_tokenizer(tmp_path / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    g = torch.Generator().manual_seed(0)
    dataset = data.Batch(np.zeros((8, 64, 64, 3), np.float32), ["a sks bird", "a red cup"] * 4)
    latents = (torch.randn(8, 4, 16, 16, generator=g).half(), torch.full((8, 4, 16, 16), 0.1).half(), 0.5)
    cfg = tb.BaseConfig(unet_steps=3, batch=2, warmup=1, checkpoint_every=1)

    def weights(work: Path) -> dict[str, torch.Tensor]:
        unet, text = tb.train_unet(work, tokenizer, dataset, latents, cfg)
        return {f"unet.{k}": v for k, v in unet.state_dict().items()} | {
            f"text.{k}": v for k, v in text.state_dict().items()
        }

    uninterrupted = weights(tmp_path / "a")
    save = tb._save_checkpoint

    def interrupt_after_first_checkpoint(path: Path, state: dict[str, object]) -> None:
        save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(tb, "_save_checkpoint", interrupt_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        weights(tmp_path / "b")
    monkeypatch.setattr(tb, "_save_checkpoint", save)
    resumed = weights(tmp_path / "b")
    assert uninterrupted.keys() == resumed.keys()
    assert [k for k in resumed if not torch.equal(uninterrupted[k], resumed[k])] == []


def test_default_pipeline_loads_with_plain_diffusers() -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(WORLD.pipeline, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a bird",
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_library_loras_load_in_diffusers() -> None:
    from diffusers import StableDiffusionPipeline

    from lorarar import LoraFile

    pipe = StableDiffusionPipeline.from_pretrained(WORLD.pipeline, torch_dtype=torch.float32)
    names = [("content", s) for s in catalog.library_subjects()] + [("style", s) for s in catalog.library_styles()]
    assert len(names) >= 32
    for kind, name in names:
        path = WORLD.content_lora(name) if kind == "content" else WORLD.style_lora(name)
        pipe.load_lora_weights(str(path), adapter_name=name)
        assert LoraFile.load(str(path)).format == "peft"
    assert len(pipe.get_list_adapters()["unet"]) == len(names)


def test_min_snr_loss_weights() -> None:
    """min(SNR, gamma) / SNR: 1 where the noise dominates (SNR <= gamma), gamma / SNR at low noise; off at 0."""
    from diffusers import DDPMScheduler

    from lorarar.world.train_base import _loss_weights

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([0, 500, 999])
    alphas = sched.alphas_cumprod[t]
    snr = alphas / (1 - alphas)
    weights = _loss_weights(sched, t, 5.0)
    assert snr[0] > 5 > snr[2]
    assert torch.allclose(weights, torch.clamp(snr, max=5.0) / snr)
    assert weights[2] == 1.0 and weights[0] < 0.01
    assert torch.equal(_loss_weights(sched, t, 0.0), torch.ones(3))


def test_world_train_some_loras_longer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``world train --stage loras --only A,B --lora-steps-scale F`` trains just those LoRAs, with the steps scaled,
    into a world folder of one's own, and records the config it used; names outside the library are refused."""
    from lorarar.cli.main import main

    root = tmp_path / "world"
    root.mkdir()
    (root / "pipeline").symlink_to(catalog.paths().pipeline)
    args = ["world", "train", "--stage", "loras", "--quick", "--out", str(root), "--only", "pip,ember"]
    assert main([*args, "--lora-steps-scale", "2"]) == 0
    facts = json.loads((root / "world.json").read_text())["loras"]
    assert facts["trained"] == ["pip", "ember"]
    assert (facts["config"]["content_steps"], facts["config"]["style_steps"]) == (4, 4)
    assert sorted(f.name for f in (root / "loras").rglob("*.safetensors")) == ["ember.safetensors", "pip.safetensors"]
    capsys.readouterr()
    assert main([*args[:-1], "pip,kestrel"]) == 2
    assert capsys.readouterr().err == "error: --only 'pip,kestrel': not in the LoRA library: kestrel\n"
    assert main([*args, "--lora-steps-scale", "0"]) == 2
    assert capsys.readouterr().err == "error: --lora-steps-scale 0.0: must be a positive number\n"
