"""Several processes: importance and masked fine-tuning under a gloo process group.

Two CPU processes on the loopback interface, spawned by the test; each builds
the same seeded model and data, as torchrun's processes would, and must end
where one process alone ends.
"""

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _helpers import random_data

from fairtune.cli import main
from fairtune.data import FairData
from fairtune.distributed import (
    all_reduce_sum_,
    process_device,
    share,
    sum_gradients_,
    whole_batch,
    world,
)
from fairtune.finetune.importance import fisher_diagonal
from fairtune.finetune.losses import Objective
from fairtune.finetune.masks import random_mask
from fairtune.finetune.training import Phase, run_phase
from fairtune.models import MLP, logits

WORLD = 2
BATCH = 10  # 61 rows: the last batch has one row, so one process gets none of it
OBJECTIVES = {"pred": Objective.pred(), "bias": Objective.bias()}
EPOCHS = 2


def make_model() -> MLP:
    torch.manual_seed(0)
    return MLP(5, (6,))


def make_data() -> FairData:
    return random_data(61, seed=1)


def make_mask(model: MLP):
    return random_mask({n: p.shape for n, p in model.named_parameters()}, 0.5, seed=3)


def make_phase(model: MLP) -> Phase:
    return Phase(
        objective=Objective(w_pred=0.5, w_bias=0.5),
        trainable=[n for n, _ in model.named_parameters()],
        mask=make_mask(model),
        epochs=EPOCHS,
        lr=0.1,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.1,
        batch_size=BATCH,
    )


def batch_gradient(model: MLP, x, y, a) -> dict[str, torch.Tensor]:
    """d L_bias / d theta of one batch (this process's slice of it under a group)."""
    model.zero_grad()
    batch = whole_batch(logits(model, x), y, a)
    Objective.bias()(batch.logits, batch.labels, batch.groups).backward()
    params = dict(model.named_parameters())
    sum_gradients_(params.values())
    return {n: p.grad.clone() for n, p in params.items()}


def run(out: str, rank: int) -> None:
    """What each process does (and one process alone, for comparison): save it all."""
    model, data = make_model(), make_data()
    loader = data.loader(BATCH, shuffle=True, seed=5, shard=True)
    rows = [[x for x, _, _ in loader] for _ in range(EPOCHS)]
    x, y, a = next(iter(data.loader(BATCH, shuffle=True, shard=True)))
    importance = {
        mode: fisher_diagonal(model, data, OBJECTIVES, mode=mode, batch_size=BATCH)
        for mode in ("batch", "per_sample")
    }
    gradient = batch_gradient(model, x, y, a)
    run_phase(model, data, make_phase(model), seed=0)
    torch.save((rows, gradient, importance, model.state_dict()), f"{out}/{rank}.pt")


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
        run(out, rank)
        # A process that tears its group down while its peer still communicates
        # aborts the peer (gloo: "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_take_the_steps_of_one(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    run(str(tmp_path), -1)  # one process
    one = torch.load(tmp_path / "-1.pt")
    two = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]

    # Each process reads its slice of the batches one process reads, every epoch.
    for epoch, batches in enumerate(one[0]):
        slices = [t[0][epoch] for t in two]
        assert len(slices[0]) == len(slices[1]) == len(batches) == 7
        for whole, first, second in zip(batches, *slices, strict=True):
            assert torch.equal(torch.cat([first, second]), whole)
            assert len(first) - len(second) in (0, 1)
    assert len(two[1][0][0][-1]) == 0  # the one-row last batch: all process 0's

    # The gradient of a batch statistic, of the importance and of the training.
    for n, g in one[1].items():
        assert torch.equal(two[0][1][n], two[1][1][n])
        torch.testing.assert_close(two[0][1][n], g, rtol=1e-5, atol=1e-7)
    for mode, per_objective in one[2].items():
        for k, per_param in per_objective.items():
            for n, expected in per_param.items():
                assert torch.equal(two[0][2][mode][k][n], two[1][2][mode][k][n])
                torch.testing.assert_close(two[0][2][mode][k][n], expected, rtol=1e-5, atol=1e-8)
    start, mask = make_model().state_dict(), make_mask(make_model())
    for n, expected in one[3].items():
        assert torch.equal(two[0][3][n], two[1][3][n]), n
        torch.testing.assert_close(two[0][3][n], expected, rtol=1e-5, atol=1e-6)
        frozen = mask.values[n] == 0
        assert torch.equal(two[0][3][n][frozen], start[n][frozen]), n
    assert any(not torch.equal(one[3][n], start[n]) for n in start)


def test_helpers_do_nothing_in_one_process():
    assert world() == (0, 1)
    t = torch.tensor([1.0, 2.0])
    all_reduce_sum_([t])
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([3.0, 4.0])
    sum_gradients_([p])
    assert torch.equal(t, torch.tensor([1.0, 2.0]))
    assert torch.equal(p.grad, torch.tensor([3.0, 4.0]))
    z = torch.ones(3, requires_grad=True)
    batch = whole_batch(z, torch.zeros(3), torch.zeros(3, dtype=torch.long))
    assert batch.logits is z and batch.own == slice(0, 3)


def test_shares_cut_a_batch_in_order():
    for n in range(12):
        for size in (1, 2, 3, 5):
            slices = [share(n, r, size) for r in range(size)]
            assert [i for s in slices for i in range(n)[s]] == list(range(n))
            assert (
                max(len(range(n)[s]) for s in slices) - min(len(range(n)[s]) for s in slices) <= 1
            )


TORCHRUN_ENV = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


def fake_gpus(monkeypatch, count: int, local_rank: int | None) -> None:
    """A machine with ``count`` CUDA devices (none: no CUDA), and torchrun's variables set
    for process ``local_rank`` on it (None: not launched by torchrun)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    if local_rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))


@pytest.mark.parametrize(
    ("count", "local_rank", "expected"),
    [
        (2, 1, torch.device("cuda", 1)),
        (1, 0, torch.device("cuda", 0)),
        (0, 1, torch.device("cpu")),  # torchrun on a CPU machine
        (2, None, torch.device("cpu")),  # one process on a GPU machine stays on the CPU
    ],
)
def test_each_torchrun_process_takes_its_local_gpu(monkeypatch, count, local_rank, expected):
    fake_gpus(monkeypatch, count, local_rank)
    assert process_device() == expected


def test_more_processes_than_gpus_is_one_error_line(monkeypatch, capsys):
    fake_gpus(monkeypatch, 1, 1)
    assert main(["methods"]) == 2  # refused before joining the process group
    assert capsys.readouterr().err.splitlines() == [
        "fairtune methods: error: process 1 on this machine has no GPU of its own (the machine "
        "has 1): start at most 1 per machine (torchrun --nproc-per-node 1)"
    ]
