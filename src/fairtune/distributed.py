"""Several processes (torchrun): the few collective operations fairtune needs.

Importance and fine-tuning run unchanged in one process. Under torchrun, with
the default process group initialised (``torch.distributed.init_process_group``),
each process reads its own share of the data (``FairData.loader(shard=True)``),
importance sums and counts are summed across processes before dividing, and
gradients are averaged before the mask scales them, so that every process ends
with the same importance and takes the same steps. Without a process group every
helper here does nothing.

The caller creates and destroys the process group; the ``fairtune`` command does
it in :func:`torchrun_group` when torchrun launched it. Under gloo, a process
that destroys the group (or exits) while a peer still communicates can abort
that peer, so every process waits for all the others before destroying it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The environment torchrun gives each process it launches."""

EXIT_WAIT = timedelta(seconds=60)
"""How long a failed process waits for its peers at the end before it exits anyway."""

_FAILED = "fairtune/failed"
_EXITED = "fairtune/exited"


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group.

    Decides whether loaders shard and whether the helpers below communicate.
    """
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def all_reduce_sum_(tensors: Iterable[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its sum over all processes; nothing in one process.

    For quantities accumulated over each process's share of the data (importance
    sums, batch counts) that are divided only once the whole data is counted.
    Every process must pass tensors of the same shapes in the same order.
    """
    if world()[1] == 1:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


def average_gradients_(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's ``.grad``, in place, by its mean over all processes.

    Run after ``backward()`` and before anything reads the gradient (mask, weight
    decay, optimiser step), so that every process takes the same step, as
    DistributedDataParallel would. Parameters without a gradient are skipped,
    which must be the same ones in every process. Nothing in one process.
    """
    size = world()[1]
    if size == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(size)


def launched_by_torchrun() -> bool:
    """Whether torchrun (or a launcher setting the same variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


@dataclass
class Processes:
    """The processes of one command: this one's rank, how many, and whether any failed."""

    rank: int = 0
    size: int = 1
    store: dist.Store | None = None
    failed: bool = False
    """Set when the command ends: whether any process recorded a failure."""

    def first_to_fail(self) -> bool:
        """Record that this process failed; True for the first to do so (always in one).

        So that a failure every process meets (bad input) is reported once.
        """
        self.failed = True
        return self.store is None or self.store.add(_FAILED, 1) == 1


@contextmanager
def torchrun_group(timeout: timedelta = timedelta(minutes=30)) -> Iterator[Processes]:
    """Initialise the default process group from torchrun's variables, and destroy it after.

    Without torchrun, one process and nothing to do. Each process takes its
    ``LOCAL_RANK`` GPU where there is one (gloo for CPU tensors, NCCL for CUDA
    ones). At the end every process waits for all the others (through the
    rendezvous store, so a process that failed alone does not wait in a
    collective its peers never join: it waits :data:`EXIT_WAIT` and leaves, and
    torchrun stops the rest), then the group is destroyed. ``timeout`` bounds
    every collective and the wait of a process that succeeded.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield Processes()
        return
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "cpu:gloo,cuda:nccl"
    # torchrun's agent hosts the store; a plain launcher leaves it to rank 0.
    hosts = rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, hosts, timeout
    )
    dist.init_process_group(
        backend,
        store=dist.PrefixStore("fairtune/group", store),
        rank=rank,
        world_size=size,
        timeout=timeout,
    )
    processes = Processes(rank, size, store)
    try:
        yield processes
    except BaseException:
        processes.failed = True
        raise
    finally:
        store.set(f"{_EXITED}/{rank}", "1")
        try:
            store.wait(
                [f"{_EXITED}/{r}" for r in range(size)],
                EXIT_WAIT if processes.failed else timeout,
            )
            dist.destroy_process_group()
            processes.failed = store.add(_FAILED, 0) > 0
        except dist.DistError:
            processes.failed = True  # a peer never came: leave; torchrun stops the others
