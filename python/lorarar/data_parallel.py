"""Several processes for one training run (``accelerate launch`` / ``torchrun``), computing what one process does.

Every training step's batch is a function of (seed, step), the *global* batch, whatever the number of processes.
Each process takes a contiguous shard of it and scales its shard's mean loss by ``Shard.weight``; the gradients,
averaged over the processes by ``average_gradients`` (one all-reduce of all of them), are then the gradient of the
global batch's mean. So N processes train the same weights as one (up to the order of float sums) in about 1/N of
the compute time each, a checkpoint written by N processes resumes on one, and the committed models do not depend
on how many machines made them. Work that is a list of independent jobs (LoRAs, classifiers, per-pair fits) is
dealt out instead (``my_share``), each job done whole by one process. Caches, checkpoints and outputs are written
by the main process (or by the process that owns the job).

Models are not wrapped in DistributedDataParallel: the loops call submodules (a VAE's encode and decode) and train
different LoRAs in different processes, neither of which DDP's wrapper allows; one flattened all-reduce a step is
the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's samples [start, stop) of a global batch of ``total``, one of ``processes`` shards."""

    start: int
    stop: int
    total: int
    processes: int

    @property
    def weight(self) -> float:
        """Scale of this shard's mean loss so that the mean over processes is the global batch's mean."""
        return (self.stop - self.start) * self.processes / self.total

    def take(self, batch: T) -> T:
        """This shard's rows of a tensor / array / list holding the whole global batch."""
        return batch[self.start : self.stop]  # type: ignore[index,no-any-return]


def shard_of(total: int, process: int, processes: int) -> Shard:
    if total < processes:
        raise ValueError(
            f"a batch of {total} cannot be split over {processes} processes: each needs one sample at least"
        )
    return Shard(process * total // processes, (process + 1) * total // processes, total, processes)


def state() -> Any:
    """accelerate's process state (rank, world size, device), initialising torch.distributed under a launcher."""
    from accelerate import PartialState

    # cpu=True is what makes accelerate use gloo on a machine without GPUs (as the loops' Accelerator(cpu=...) do).
    return PartialState(cpu=not torch.cuda.is_available())


def batch_shard(total: int) -> Shard:
    s = state()
    return shard_of(total, s.process_index, s.num_processes)


def whole(total: int) -> Shard:
    """Every sample of a batch of ``total`` (a single process's shard)."""
    return shard_of(total, 0, 1)


def my_share(jobs: Sequence[T]) -> list[T]:
    """The jobs this process does when independent jobs are dealt out round-robin."""
    s = state()
    return list(jobs[s.process_index :: s.num_processes])


def mean_of_jobs(jobs: Sequence[T], value: Callable[[T], float]) -> float:
    """The mean of ``value`` over all jobs, each evaluated by one process (the same number on every process)."""
    return sum_over_processes(sum(value(job) for job in my_share(jobs))) / len(jobs)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replaces each parameter's gradient by its mean over the processes (nothing to do in a single process).
    Parameters without a gradient in this step count as zero gradients, as in every other process."""
    s = state()
    if s.num_processes == 1:
        return
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    # On the process group's device (NCCL reduces GPU tensors only), whatever device the model trains on.
    flat = torch.cat([p.grad.reshape(-1) for p in params]).to(s.device)  # type: ignore[union-attr]
    torch.distributed.all_reduce(flat)
    flat /= s.num_processes
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
        offset += n


def sum_over_processes(value: float) -> float:
    """A scalar summed over the processes (every process gets the same number)."""
    s = state()
    if s.num_processes == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=s.device)
    torch.distributed.all_reduce(t)
    return float(t.item())


def mean_over_processes(value: float) -> float:
    return sum_over_processes(value) / int(state().num_processes)


def gather_lists(items: list[T]) -> list[T]:
    """Every process's list, concatenated in process order (the same on every process)."""
    if state().num_processes == 1:
        return list(items)
    from accelerate.utils import gather_object

    return list(gather_object(items))
