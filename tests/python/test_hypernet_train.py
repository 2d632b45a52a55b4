"""Training the hypernetwork: the ground-truth objective against diffusers, and every objective's code path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lorarar import LoraFile
from lorarar.hypernet.train import (
    OBJECTIVES,
    HyperTrainConfig,
    PairWorld,
    fit_coefficients,
    oracle_loss,
    pair_oracles,
    proximity_penalty,
    train_hypernet,
)
from lorarar.world import catalog

ALL_FOUR = ("to_q", "to_k", "to_v", "to_out.0")


@pytest.fixture(scope="module")
def world() -> PairWorld:
    return PairWorld()


def test_ground_truth_objective_is_the_summed_pairs_denoising_loss(world: PairWorld) -> None:
    """With every coefficient 1 (the sum) and no orthogonality term, the loss is the epsilon MSE of the UNet that
    diffusers builds from the two LoRA files (set_adapters, weights 1 and 1) on the pair's noised renders."""
    from diffusers import StableDiffusionPipeline

    content, style = "truck", "denim"
    ones = {
        name: (torch.ones(f.down.shape[1]), torch.ones(world.factors[style][name].down.shape[1]))
        for name, f in world.factors[content].items()
    }
    loss = world.truth_objective(content, style, ones, 3, torch.Generator().manual_seed(3), 0.0)
    x, t, e, noise = world.truth_batch(content, style, 3, torch.Generator().manual_seed(3))

    paths = catalog.paths()
    pipe = StableDiffusionPipeline.from_pretrained(paths.pipeline, torch_dtype=torch.float32)
    pipe.load_lora_weights(str(paths.content_lora(content)), adapter_name="c")
    pipe.load_lora_weights(str(paths.style_lora(style)), adapter_name="s")
    pipe.set_adapters(["c", "s"], [1.0, 1.0])
    with torch.no_grad():
        expected = ((pipe.unet(x, t, e).sample - noise) ** 2).mean()
        ids = pipe.tokenizer([catalog.merged_prompt(content)], padding="max_length", return_tensors="pt").input_ids
        prompt = pipe.text_encoder(ids)
    torch.testing.assert_close(e[0], prompt[0][0], rtol=0, atol=1e-6)
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    assert 0.01 < float(expected) < 1.0  # a denoising loss, not a trivially zero one


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_trains_and_merges_the_configured_layers(
    objective: str, world: PairWorld, tmp_path: Path
) -> None:
    from lorarar.merge.methods import hypernet_coefficients, load_hypernet

    cfg = HyperTrainConfig(steps=2, batch=1, val_every=2, val_pairs=1, checkpoint_every=1, objective=objective)
    cfg.merged = ALL_FOUR
    cfg.oracle_steps = 1  # the oracle objective fits every train pair first: one step each here
    cfg.proximity = 1.0 if objective == "ground-truth" else 0.0
    facts = train_hypernet(tmp_path / "net", tmp_path / "work", cfg, world=world)
    saved = json.loads((tmp_path / "net" / "training.json").read_text())
    assert saved["config"]["objective"] == objective and saved["config"]["merged"] == list(ALL_FOUR)
    assert [h["step"] for h in facts["history"]] == [2] and facts["best_val"] == facts["history"][0]["val"] > 0

    net = load_hypernet(tmp_path / "net")
    assert net.config.merged == ALL_FOUR
    paths = catalog.paths()
    content, style = LoraFile.load(str(paths.content_lora("truck"))), LoraFile.load(str(paths.style_lora("denim")))
    merged = hypernet_coefficients(net, content, style)
    assert sorted(merged) == sorted(world.targets)  # every attention projection, not only to_q / to_out.0


def test_unknown_objective_is_refused(world: PairWorld, tmp_path: Path) -> None:
    from lorarar.cli import hypernet_cmd

    with pytest.raises(
        ValueError, match=r"unknown objective 'mse' \(ziplora, ground-truth, ziplora\+ground-truth, oracle\)"
    ):
        train_hypernet(tmp_path / "net", tmp_path / "work", HyperTrainConfig(objective="mse"), world=world)
    assert hypernet_cmd.OBJECTIVES == OBJECTIVES  # the CLI's copy (it does not import torch)
    with pytest.raises(ValueError, match=r"^the oracle objective takes no proximity term"):
        train_hypernet(tmp_path / "n", tmp_path / "w", HyperTrainConfig(objective="oracle", proximity=1.0), world=world)


def test_oracles_are_the_pairs_ground_truth_fits_cached(
    world: PairWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pair_oracles is fit_coefficients on the ground-truth loss (lambda 0) of each pair, saved per pair: a second
    call reads the files instead of fitting again, and another layer set is another file."""
    from lorarar.hypernet import train

    pairs = [("truck", "denim"), ("truck", "charcoal")]
    first = pair_oracles(world, pairs, ("to_q",), 2, tmp_path)
    direct = fit_coefficients(world, "truck", "denim", "ground-truth", ("to_q",), steps=2, lam=0.0, batch=4)
    assert sorted(first[pairs[0]]) == sorted(direct) and all(k.endswith("to_q") for k in direct)
    for k, (c, s) in direct.items():
        assert torch.equal(first[pairs[0]][k][0], c) and torch.equal(first[pairs[0]][k][1], s)
    assert len(list(tmp_path.glob("truck+*.pt"))) == 2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fitted again")

    monkeypatch.setattr(train, "fit_coefficients", refuse)
    again = pair_oracles(world, pairs, ("to_q",), 2, tmp_path)
    assert all(torch.equal(again[pairs[1]][k][0], v[0]) for k, v in first[pairs[1]].items())
    with pytest.raises(AssertionError, match="fitted again"):
        pair_oracles(world, pairs[:1], ("to_out.0",), 2, tmp_path)


def test_oracle_loss_is_the_mean_squared_distance_to_the_oracle() -> None:
    oracle = {"a": (torch.ones(2), torch.zeros(2)), "b": (torch.ones(4), torch.ones(4))}
    assert float(oracle_loss(oracle, oracle)) == 0.0
    moved = {"a": (torch.tensor([1.0, 3.0]), torch.zeros(2)), "b": (torch.ones(4), torch.zeros(4))}
    # layer a: (0 + 4) / 2 + 0 = 2; layer b: 0 + 1 = 1; mean 1.5, halved
    assert float(oracle_loss(moved, oracle)) == pytest.approx(0.75)


def test_proximity_penalty_is_the_mean_squared_distance_from_the_sum() -> None:
    ones = {"a": (torch.ones(3), torch.ones(5)), "b": (torch.ones(2), torch.ones(2))}
    assert float(proximity_penalty(ones)) == 0.0
    moved = {"a": (torch.tensor([1.0, 1.0, 3.0]), torch.ones(5)), "b": (torch.zeros(2), torch.ones(2))}
    # layer a: (2^2) / 8 columns = 0.5; layer b: 2 * 1^2 / 4 = 0.5; mean over layers 0.5
    assert float(proximity_penalty(moved)) == pytest.approx(0.5)


def test_train_hypernet_cli_passes_the_variant_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lorarar.cli.main import main

    args = ["train-hypernet", "--steps", "1", "--out", str(tmp_path / "net"), "--work", str(tmp_path / "work")]
    args += ["--objective", "ground-truth", "--merged", "to_q, to_k", "--proximity", "0.5", "--lam", "0"]
    assert main([*args, "--batch", "2", "--val-every", "1"]) == 0
    config = json.loads((tmp_path / "net" / "training.json").read_text())["config"]
    assert (config["objective"], config["merged"], config["proximity"], config["lam"]) == (
        "ground-truth",
        ["to_q", "to_k"],
        0.5,
        0.0,
    )
    assert (config["batch"], config["val_every"]) == (2, 1)
    assert json.loads((tmp_path / "net" / "config.json").read_text())["merged"] == ["to_q", "to_k"]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["params"] > 0


def test_train_scope_all_is_every_train_subject_with_every_train_style() -> None:
    library, full = catalog.pairs("train"), catalog.pairs("train", "all")
    assert len(library) == 64 and len(full) == 256 and len(set(full)) == 256
    assert {c for c, _ in full} == set(catalog.SUBJECT_SPLITS["train"])
    assert {s for _, s in full} == set(catalog.STYLE_SPLITS["train"])
    assert [p for p in full if p in set(library)] == library  # the library's pairs keep their order
    assert catalog.pairs("test", "all") == catalog.pairs("test")  # only the train split grows
    with pytest.raises(ValueError, match=r"unknown train scope 'most' \(library, all\)"):
        catalog.pairs("train", "most")


def test_train_scope_all_needs_its_loras(tmp_path: Path) -> None:
    from lorarar.errors import LoraError

    root = catalog.default_dir()
    missing = catalog.paths(root).content_lora(catalog.SUBJECT_SPLITS["train"][1])
    with pytest.raises(LoraError) as e:
        PairWorld(root, scope="all")
    assert str(e.value) == (
        f"{missing}: no such file (train it: lorarar world train --stage loras --train-scope all --out {root})"
    )
    with pytest.raises(ValueError, match=r"the pair world has no LoRA for .*kestrel.* \(train scope 'all'\)"):
        train_hypernet(tmp_path / "n", tmp_path / "w", HyperTrainConfig(train_scope="all"), world=PairWorld(root))


def test_train_scope_all_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The 16 train names outside the library get LoRAs in a copy of the world, and the hypernetwork trains on the
    256 pairs from there (a few steps each: the code path, not a usable result)."""
    import shutil

    from lorarar.cli.main import main

    root = tmp_path / "world"
    root.mkdir()
    (root / "pipeline").symlink_to(catalog.paths().pipeline)
    shutil.copytree(catalog.default_dir() / "loras", root / "loras")
    args = ["world", "train", "--stage", "loras", "--quick", "--out", str(root), "--only", "kestrel"]
    assert main(args) == 2
    assert capsys.readouterr().err == "error: --only 'kestrel': not in the LoRA library: kestrel\n"
    assert main([*args[:-2], "--train-scope", "all"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["trained"]
    extra = sorted(
        set(catalog.SUBJECT_SPLITS["train"] + catalog.STYLE_SPLITS["train"])
        - set(catalog.library_subjects() + catalog.library_styles())
    )
    assert sorted(trained) == extra and len(extra) == 16
    assert LoraFile.load(str(catalog.paths(root).style_lora("lagoon"))).layers

    net = tmp_path / "net"
    args = ["train-hypernet", "--steps", "2", "--out", str(net), "--work", str(tmp_path / "work")]
    assert main([*args, "--train-scope", "all", "--root", str(root)]) == 0
    assert json.loads((net / "training.json").read_text())["config"]["train_scope"] == "all"
