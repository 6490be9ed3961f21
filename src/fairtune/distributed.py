"""Several processes (torchrun): the few collective operations fairtune needs.

Importance and fine-tuning run unchanged in one process. Under torchrun, with
the default process group initialised (``torch.distributed.init_process_group``),
every process goes through the same batches as one process would, in the same
order, and reads its own contiguous slice of each (:func:`share`;
``FairData.loader(shard=True)``). The losses are statistics of the whole batch
(group-conditional rates, class-rebalanced means), so each process gathers the
batch's logits, labels and groups from all the others (:func:`whole_batch`) and
computes the loss of the whole batch, its own rows carrying the gradient; the
processes' gradients are then summed (:func:`sum_gradients_`), which gives the
gradient of the whole batch, as one process computes it. So every process ends
with the same importance and takes the same steps as one process, up to
floating-point rounding. Without a process group every helper here does nothing.

The caller creates and destroys the process group; the ``fairtune`` command does
it in :func:`torchrun_group` when torchrun launched it, and puts its models on
:func:`process_device`. Under gloo, a process that destroys the group (or
exits) while a peer still communicates can abort that peer, so every process
waits for all the others before destroying it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from fairtune.errors import FairtuneError

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


def sum_gradients_(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's ``.grad``, in place, by its sum over all processes.

    Each process's gradient is its own rows' part of the whole batch's gradient
    (see :func:`whole_batch`), so the sum is the whole batch's gradient. Run
    after ``backward()`` and before anything reads the gradient (mask, weight
    decay, optimiser step), so that every process takes the same step.
    Parameters without a gradient are skipped, which must be the same ones in
    every process. Nothing in one process.
    """
    all_reduce_sum_(p.grad for p in params if p.grad is not None)


def share(n: int, rank: int, size: int) -> slice:
    """The rows of an ``n``-row batch that process ``rank`` of ``size`` takes.

    Contiguous slices in rank order, whose lengths differ by at most one (a
    process may get none when ``n < size``), so that the slices of every process
    put together in rank order are the batch in its own order.
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


@dataclass(frozen=True)
class WholeBatch:
    """A batch's logits, labels and groups from every process, in the batch's own order.

    ``own`` locates this process's rows; only they carry gradient, so a loss of
    the whole batch differentiated in each process and summed over processes
    (:func:`sum_gradients_`) is that loss's gradient.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    own: slice


def whole_batch(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> WholeBatch:
    """The whole batch, gathered from this process's slice and the other processes' ones.

    In one process the tensors themselves (the batch is all this process's).
    Every process must call it for every batch, with its own slice (possibly
    empty) of the batch as :func:`share` cuts it.
    """
    rank, size = world()
    if size == 1:
        return WholeBatch(logits, labels, groups, slice(0, len(logits)))
    lengths = [torch.zeros(1, dtype=torch.int64, device=logits.device) for _ in range(size)]
    dist.all_gather(lengths, torch.tensor([len(logits)], device=logits.device))
    counts = [int(n.item()) for n in lengths]
    # One collective for the three: rows padded to the longest slice, in a dtype
    # that holds the logits, the 0/1 labels and the group ids exactly.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    mine = torch.zeros(3, max(counts), dtype=dtype, device=logits.device)
    for row, t in enumerate((logits.detach(), labels, groups)):
        mine[row, : len(t)] = t.to(dtype)
    parts = [torch.empty_like(mine) for _ in range(size)]
    dist.all_gather(parts, mine)
    parts = [p[:, :n] for p, n in zip(parts, counts, strict=True)]
    start = sum(counts[:rank])
    return WholeBatch(
        torch.cat([logits if r == rank else p[0].to(logits.dtype) for r, p in enumerate(parts)]),
        torch.cat([p[1] for p in parts]).to(labels.dtype),
        torch.cat([p[2] for p in parts]).to(groups.dtype),
        slice(start, start + len(logits)),
    )


def launched_by_torchrun() -> bool:
    """Whether torchrun (or a launcher setting the same variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def process_device() -> torch.device:
    """Where this process computes: its ``LOCAL_RANK`` GPU under torchrun on a CUDA machine,
    else the CPU (one process, even with a GPU, stays on the CPU).

    Fails when the machine has fewer GPUs than torchrun started processes on it.
    """
    if not launched_by_torchrun() or not torch.cuda.is_available():
        return torch.device("cpu")
    local, count = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
    if local >= count:
        raise FairtuneError(
            f"process {local} on this machine has no GPU of its own (the machine has {count}): "
            f"start at most {count} per machine (torchrun --nproc-per-node {count})"
        )
    return torch.device("cuda", local)


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
    :func:`process_device` (gloo for CPU tensors, NCCL for CUDA ones) and fails
    with :class:`~fairtune.errors.FairtuneError` before joining the group when
    that GPU is missing. At the end every process waits for all the others (through the
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
    if (device := process_device()).type == "cuda":
        torch.cuda.set_device(device)
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
