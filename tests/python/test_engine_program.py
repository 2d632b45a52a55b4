"""The native engine runs ExecuTorch programs: parity with eager PyTorch and ExecuTorch's own runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lorarar import LoraError
from lorarar._native import Program


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.relu(self.linear(x)) * 2, (ids.float() + 1).sum(-1, keepdim=True)


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, _Tiny]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    torch.manual_seed(0)
    model = _Tiny().eval()
    example = (torch.randn(3, 8), torch.arange(6).reshape(3, 2))
    program = to_edge_transform_and_lower(
        torch.export.export(model, example), partitioner=[XnnpackPartitioner()]
    ).to_executorch()
    path = tmp_path_factory.mktemp("pte") / "tiny.pte"
    path.write_bytes(program.buffer)
    return path, model


def test_native_run_matches_eager_and_executorch_runtime(tiny_pte: tuple[Path, _Tiny]) -> None:
    from executorch.runtime import Runtime

    path, model = tiny_pte
    x, ids = torch.randn(3, 8), torch.arange(6).reshape(3, 2)
    program = Program.open(str(path))
    assert program.method_names == ["forward"]
    native = program.run("forward", [x.numpy(), ids.numpy()])
    with torch.no_grad():
        eager = model(x, ids)
    theirs = Runtime.get().load_program(str(path)).load_method("forward").execute([x, ids])
    for n, e, t in zip(native, eager, theirs, strict=True):
        assert n.shape == tuple(e.shape)
        np.testing.assert_allclose(n, e.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(n, t.numpy())


def test_program_errors_name_the_file(tiny_pte: tuple[Path, _Tiny], tmp_path: Path) -> None:
    path, _ = tiny_pte
    with pytest.raises(LoraError, match=r"nope\.pte: cannot load program"):
        Program.open(str(tmp_path / "nope.pte"))
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a program" * 10)
    with pytest.raises(LoraError, match=r"bad\.pte: cannot load program \(ExecuTorch: "):
        Program.open(str(bad))
    with pytest.raises(LoraError, match=r'cannot load method "decode"'):
        Program.open(str(path), methods=["decode"])
    program = Program.open(str(path))
    with pytest.raises(LoraError, match=r'running "forward" failed'):
        program.run("forward", [np.zeros((3, 5), np.float32), np.zeros((3, 2), np.int64)])
