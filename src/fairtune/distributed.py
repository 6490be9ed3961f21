"""Several processes (torchrun): the few collective operations fairtune needs.

Importance and fine-tuning run unchanged in one process. Under torchrun, with
the default process group initialised (``torch.distributed.init_process_group``),
each process reads its own share of the data (``FairData.loader(shard=True)``),
importance sums and counts are summed across processes before dividing, and
gradients are averaged before the mask scales them, so that every process ends
with the same importance and takes the same steps. Without a process group every
helper here does nothing.

The caller creates and destroys the process group. Under gloo, a process that
destroys it (or exits) while a peer still communicates can abort that peer, so
every process calls ``dist.barrier()`` before ``dist.destroy_process_group()``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist


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
