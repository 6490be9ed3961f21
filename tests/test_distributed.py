"""Several processes: importance and masked fine-tuning under a gloo process group.

Two CPU processes on the loopback interface, spawned by the test; each builds
the same seeded model and data, as torchrun's processes would.
"""

from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _helpers import random_data
from torch.utils.data import DistributedSampler

from fairtune.data import FairData
from fairtune.distributed import all_reduce_sum_, average_gradients_, world
from fairtune.importance import fisher_diagonal
from fairtune.losses import Objective
from fairtune.masks import random_mask
from fairtune.models import MLP, logits
from fairtune.training import Phase, run_phase

WORLD = 2
BATCH = 8
OBJECTIVES = {"pred": Objective.pred(), "bias": Objective.bias()}


def make_model() -> MLP:
    torch.manual_seed(0)
    return MLP(5, (6,))


def make_data() -> FairData:
    return random_data(64, seed=1)


def make_mask(model: MLP):
    return random_mask({n: p.shape for n, p in model.named_parameters()}, 0.5, seed=3)


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    # A file store, not a TCP one: no process hosts the store, so none can take it away
    # (by exiting first) while its peer still tears the group down, and no port can be
    # taken between choosing it and binding it.
    dist.init_process_group(
        "gloo",
        init_method=f"file://{out}/store",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),  # a peer gone mid-collective fails the test, not hangs it
    )
    try:
        assert world() == (rank, WORLD)
        model, data = make_model(), make_data()
        loader = data.loader(BATCH, shuffle=True, shard=True)
        assert isinstance(loader.sampler, DistributedSampler) and len(loader) == 4
        assert not isinstance(data.loader(BATCH).sampler, DistributedSampler)
        importance = fisher_diagonal(model, data, OBJECTIVES, mode="batch", batch_size=BATCH)
        torch.save(importance, f"{out}/imp{rank}.pt")
        phase = Phase(
            objective=Objective(w_pred=0.5, w_bias=0.5),
            trainable=[n for n, _ in model.named_parameters()],
            mask=make_mask(model),
            epochs=2,
            lr=0.1,
            optimizer="sgd",
            momentum=0.9,
            weight_decay=0.1,
            batch_size=BATCH,
        )
        run_phase(model, data, phase, seed=0)
        torch.save(model.state_dict(), f"{out}/state{rank}.pt")
        # A process that tears its group down while its peer still communicates
        # aborts the peer (gloo: "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def shard_importance(model: MLP, data: FairData) -> dict[str, dict[str, torch.Tensor]]:
    """(sum0 + sum1) / (batches0 + batches1) with each shard's batches, by a plain loop."""
    params = dict(model.named_parameters())
    sums = {k: {n: torch.zeros_like(p) for n, p in params.items()} for k in OBJECTIVES}
    batches = 0
    model.eval()
    for r in range(WORLD):
        rows = list(DistributedSampler(data, WORLD, r, shuffle=False))
        for start in range(0, len(rows), BATCH):
            x, y, a = data[torch.tensor(rows[start : start + BATCH])]
            for k, objective in OBJECTIVES.items():
                grads = torch.autograd.grad(
                    objective(logits(model, x), y, a), list(params.values())
                )
                for n, g in zip(params, grads, strict=True):
                    sums[k][n] += g.square()
            batches += 1
    return {k: {n: s / batches for n, s in per.items()} for k, per in sums.items()}


def test_two_processes_share_importance_and_steps(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    imps = [torch.load(tmp_path / f"imp{r}.pt") for r in range(WORLD)]
    states = [torch.load(tmp_path / f"state{r}.pt") for r in range(WORLD)]

    expected = shard_importance(make_model(), make_data())
    for k in OBJECTIVES:
        for n in expected[k]:
            assert torch.equal(imps[0][k][n], imps[1][k][n])
            torch.testing.assert_close(imps[0][k][n], expected[k][n], rtol=1e-5, atol=1e-8)

    start = make_model().state_dict()
    mask = make_mask(make_model())
    moved = False
    for n, before in start.items():
        assert torch.equal(states[0][n], states[1][n]), n
        frozen = mask.values[n] == 0
        assert torch.equal(states[0][n][frozen], before[frozen]), n
        moved |= not torch.equal(states[0][n], before)
    assert moved


def test_helpers_do_nothing_in_one_process():
    assert world() == (0, 1)
    t = torch.tensor([1.0, 2.0])
    all_reduce_sum_([t])
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([3.0, 4.0])
    average_gradients_([p])
    assert torch.equal(t, torch.tensor([1.0, 2.0]))
    assert torch.equal(p.grad, torch.tensor([3.0, 4.0]))
    data = make_data()
    assert not isinstance(data.loader(BATCH, shuffle=True, shard=True).sampler, DistributedSampler)
