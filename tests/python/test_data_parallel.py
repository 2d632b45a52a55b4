"""Training on several processes (accelerate launch / torchrun) trains what one process trains: each loop of the
world and the hypernetwork run on two processes (torchrun, gloo on this CPU, the launcher accelerate uses for
several GPUs) against the same toy run on one (tests/python/data_parallel_job.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorarar.data_parallel import Shard, shard_of

JOB = Path(__file__).with_name("data_parallel_job.py")


def _on_two_processes(mode: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(JOB),
        mode,
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _on_one_process(mode: str, out: Path) -> None:
    # A process of its own too: accelerate's state (mixed precision, process group) is per process, and the
    # toy runs use another mixed precision than the rest of the suite.
    out.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([sys.executable, str(JOB), mode, str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_shards_cover_the_batch_and_weigh_to_its_mean() -> None:
    for total, processes in ((3, 2), (24, 2), (7, 3), (4, 4)):
        shards = [shard_of(total, p, processes) for p in range(processes)]
        assert [s.start for s in shards] == [0] + [s.stop for s in shards[:-1]] and shards[-1].stop == total
        # mean over processes of (shard mean * weight) == mean of the whole batch, for any per-sample losses
        losses = torch.arange(total, dtype=torch.float64) ** 2
        assert sum(s.take(losses).mean() * s.weight for s in shards) / processes == pytest.approx(losses.mean())
    assert shard_of(3, 1, 2) == Shard(1, 3, 3, 2)
    with pytest.raises(ValueError, match="a batch of 1 cannot be split over 2 processes: each needs one sample"):
        shard_of(1, 0, 2)


def _relative_difference(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], start: dict[str, torch.Tensor]
) -> float:
    """|a - b| over |a - start| across all floating tensors: how much two runs differ, against how far training
    moved the weights."""
    keys = [k for k in start if start[k].is_floating_point()]
    diff = torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys))
    moved = torch.sqrt(sum(((a[k].double() - start[k].double()) ** 2).sum() for k in keys))
    assert moved > 0
    return float(diff / moved)


def test_base_unet_and_text_encoder_on_two_processes_equal_one(tmp_path: Path) -> None:
    _on_one_process("base", tmp_path / "one")
    _on_two_processes("base", tmp_path / "two")
    assert json.loads((tmp_path / "two" / "facts.json").read_text()) == {"processes": 2}
    one = torch.load(tmp_path / "one" / "weights.pt")
    two = torch.load(tmp_path / "two" / "weights.pt")
    assert one["weights"].keys() == two["weights"].keys()
    # Float sums in another order only: a run that did not weigh the uneven shards lands 0.29 away.
    assert _relative_difference(two["weights"], one["weights"], one["initial"]) < 2e-3  # measured 6e-5


def test_hypernet_on_two_processes_equals_one(tmp_path: Path) -> None:
    from lorarar.hypernet.model import HyperNet

    _on_one_process("hypernet", tmp_path / "one")
    _on_two_processes("hypernet", tmp_path / "two")
    one = json.loads((tmp_path / "one" / "facts.json").read_text())
    two = json.loads((tmp_path / "two" / "facts.json").read_text())
    # The train loss is the global batch's and the validation runs over all 3 val pairs (2 + 1 per process).
    assert one[0]["step"] == two[0]["step"] == 3
    assert two[0]["train"] == pytest.approx(one[0]["train"], rel=1e-4)
    assert two[0]["val"] == pytest.approx(one[0]["val"], rel=1e-4)
    a = HyperNet.load(tmp_path / "one" / "net").state_dict()
    b = HyperNet.load(tmp_path / "two" / "net").state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


def test_lora_stage_deals_the_loras_out(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from lorarar.world import catalog

    _on_one_process("loras", tmp_path / "one")
    _on_two_processes("loras", tmp_path / "two")
    # The facts list every LoRA trained, by either process, in the library's order.
    assert json.loads((tmp_path / "two" / "facts.json").read_text()) == ["pip", "wren", "ember"]
    for path in ("loras/content/pip", "loras/content/wren", "loras/style/ember"):
        a = load_file(tmp_path / "one" / f"{path}.safetensors")
        b = load_file(tmp_path / "two" / f"{path}.safetensors")
        assert a.keys() == b.keys() and len(a) > 0
        # Each LoRA trained whole by one process: the same up to the thread count's float sums (fp16 files).
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=2e-3) for k in a)
    assert catalog.paths(tmp_path / "two").content_lora("pip") == tmp_path / "two" / "loras/content/pip.safetensors"
