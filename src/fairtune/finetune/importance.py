"""Parameter importance: the empirical Fisher diagonal of a loss on the external set.

For each objective (e.g. L_pred and L_bias) and each parameter, the elementwise
mean of squared gradients, with the model in eval mode (METHODS.md, "Parameter
importance"). Two modes: squared batch gradients (the authors' way) and squared
per-sample gradients (the textbook empirical Fisher).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from fairtune.console import progress_bar
from fairtune.data import FairData
from fairtune.distributed import all_reduce_sum_, whole_batch, world
from fairtune.errors import FairtuneError
from fairtune.finetune.losses import LossFn
from fairtune.models import channels_last, evaluating, logits, to_device

PER_SAMPLE_CHUNK = 16
FISHER_MODES = ("batch", "per_sample")


def _logits_with(model: nn.Module, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """``logits(model, x)`` with the parameters in ``tensors`` swapped in."""

    def call(inp: Tensor) -> Tensor:
        return functional_call(model, dict(tensors), (inp,))

    return logits(call, x)  # type: ignore[arg-type]  # logits only calls its model


def _chosen(model: nn.Module, params: Sequence[str] | None) -> dict[str, Tensor]:
    """The named parameters to differentiate, detached from the model (same storage)."""
    named = dict(model.named_parameters())
    names = list(named) if params is None else list(params)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise FairtuneError(f"no parameter(s) {unknown[:3]} in the model; it has {list(named)[:5]}")
    if not names:
        raise FairtuneError("no parameters to compute importance for")
    return {n: named[n].detach() for n in names}


def _logit_gradients(
    model: nn.Module, tensors: Mapping[str, Tensor], x: Tensor
) -> dict[str, Tensor]:
    """Per-sample gradients dz_i/dtheta of each sample's logit, shape (n, *param.shape).

    One vmapped pass over the batch; ``tensors`` are the parameters to
    differentiate (the rest of the model is held fixed). The model should be in
    eval mode so that each sample's logit depends on that sample alone.
    """

    def one_logit(t: dict[str, Tensor], xi: Tensor) -> Tensor:
        return _logits_with(model, t, xi.unsqueeze(0))[0]

    return vmap(grad(one_logit), in_dims=(None, 0))(dict(tensors), x)


def _logit_weights(
    objectives: Mapping[str, LossFn], z: Tensor, labels: Tensor, groups: Tensor
) -> dict[str, Tensor]:
    """n * dL/dz_i for each objective: each sample's share of the batch gradient."""
    z = z.detach().requires_grad_()
    out = {}
    for name, objective in objectives.items():
        (dz,) = torch.autograd.grad(objective(z, labels, groups), z)
        out[name] = len(z) * dz
    return out


def per_sample_gradients(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    groups: Tensor,
    objective: LossFn,
    params: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Per-sample gradients g_i = n * (dL/dz_i) * dz_i/dtheta of a batch objective.

    Their mean over the batch is the batch gradient dL/dtheta. For a mean of
    per-sample losses (L_pred) g_i is the gradient of sample i's own term; for a
    batch statistic (L_bias) it is sample i's share. The model runs in eval mode.
    """
    tensors = _chosen(model, params)
    with evaluating(model):
        with torch.no_grad():
            z = _logits_with(model, tensors, x)
        c = _logit_weights({"L": objective}, z, labels.to(z.dtype), groups)["L"]
        per_sample = _logit_gradients(model, tensors, x)
    return {n: _times(c, j) for n, j in per_sample.items()}


def _times(c: Tensor, per_sample: Tensor) -> Tensor:
    """Scale row i of ``per_sample`` by c[i]."""
    return c.reshape(-1, *([1] * (per_sample.dim() - 1))) * per_sample


def _batches(data: FairData, batch_size: int, progress: bool) -> Iterator:
    """The data's batches in order (this process's slice of each), with a progress bar."""
    loader = data.loader(batch_size, shard=True)
    with progress_bar(progress, "importance", len(loader)) as advance:
        for batch in loader:
            yield batch
            advance()


def _finish(
    sums: dict[str, dict[str, Tensor]], count: int, shared: bool
) -> dict[str, dict[str, Tensor]]:
    """Mean = sum / count, as float32.

    In a distributed run, sums and a count of each process's own rows
    (``shared`` False) are all-reduced (in place) before dividing, so every
    process gets the same importance; ``shared`` ones are already the same in
    every process. Fails when no row was seen.
    """
    if not shared and world()[1] > 1:
        all_reduce_sum_(s for per_param in sums.values() for s in per_param.values())
        total = torch.tensor([count], dtype=torch.int64, device=_device(sums))
        all_reduce_sum_([total])
        count = int(total.item())
    if count == 0:
        raise FairtuneError("no data to compute importance on")
    return {
        k: {n: (s / count).to(torch.float32).contiguous() for n, s in per_param.items()}
        for k, per_param in sums.items()
    }


def _device(sums: dict[str, dict[str, Tensor]]) -> torch.device:
    """Where the sums are (the parameters' device): collectives need one there."""
    return next(t for per_param in sums.values() for t in per_param.values()).device


def fisher_diagonal(
    model: nn.Module,
    data: FairData,
    objectives: Mapping[str, LossFn],
    params: list[str] | None = None,
    mode: str = "batch",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, dict[str, Tensor]]:
    """Empirical Fisher diagonal of each objective: {objective: {param name: importance}}.

    ``mode="batch"`` (the authors' way): mean over batches of (dL_batch/dtheta)^2,
    all objectives differentiated from one forward pass per batch.

    ``mode="per_sample"`` (the textbook empirical Fisher): mean over samples of
    g_i^2. A bias loss is a statistic of the whole batch and has no per-sample
    term, so for any objective L(z_1..z_n) of the batch logits the per-sample
    gradient is defined uniformly as g_i = n * (dL/dz_i) * dz_i/dtheta: sample
    i's share of the batch gradient, scaled so that mean_i g_i = dL/dtheta. For a
    mean of per-sample losses (L_pred) it is the gradient of sample i's own term.
    dL/dz comes from autograd on the batch logits; dz_i/dtheta from one vmapped
    pass shared by all objectives, taken ``PER_SAMPLE_CHUNK`` samples at a time
    so that memory stays at that many copies of the parameters.

    ``params`` restricts the parameters (all by default); no gradient is taken
    for the others. Batches are taken in order and moved to the parameters'
    device; the model runs in eval mode, in its own precision (no autocast), in
    channels_last layout for images, and is left unchanged. Importances are
    float32 tensors shaped like the parameters, on their device.

    Under torchrun (see :mod:`fairtune.distributed`) each process runs the
    model on its own slice of each batch (the batches of one process) and
    computes the objectives on the whole batch's gathered logits. Batch mode
    sums the processes' parts of the batch gradient before squaring it, so it
    squares the whole batch's gradient; per-sample mode weighs each sample by
    dL/dz_i of the whole batch, and the sums of squares and row counts are
    added up across processes before dividing. Either way every process
    returns the importance one process computes, up to rounding.
    """
    if mode not in FISHER_MODES:
        raise FairtuneError(f"unknown Fisher mode '{mode}'; choose one of {list(FISHER_MODES)}")
    if not objectives:
        raise FairtuneError("no objectives to compute importance for")
    with evaluating(model), channels_last(model):
        tensors = _chosen(model, params)
        if mode == "batch":
            # Leaves of our own (sharing storage), so no gradient ever reaches the model.
            tensors = {n: t.requires_grad_() for n, t in tensors.items()}
        device = next(iter(tensors.values())).device
        sums = {
            k: {
                n: torch.zeros_like(t, dtype=torch.promote_types(t.dtype, torch.float32))
                for n, t in tensors.items()
            }
            for k in objectives
        }
        count = 0
        for x, y, a in _batches(data, batch_size, progress):
            x, y, a = to_device(x, device), y.to(device), a.to(device)
            if mode == "batch":
                batch = whole_batch(_logits_with(model, tensors, x), y, a)
                z = batch.logits
                for i, (k, objective) in enumerate(objectives.items()):
                    grads = torch.autograd.grad(
                        objective(z, batch.labels.to(z.dtype), batch.groups),
                        list(tensors.values()),
                        retain_graph=i < len(objectives) - 1,
                        allow_unused=True,
                    )
                    _add_squares(sums[k], dict(zip(tensors, grads, strict=True)))
                count += 1
            else:
                with torch.no_grad():
                    batch = whole_batch(_logits_with(model, tensors, x), y, a)
                z = batch.logits
                weights = _logit_weights(objectives, z, batch.labels.to(z.dtype), batch.groups)
                for rows in torch.arange(len(x), device=device).split(PER_SAMPLE_CHUNK):
                    jacobians = _logit_gradients(model, tensors, x[rows])
                    squares = {n: j.square_() for n, j in jacobians.items()}
                    for k, c in weights.items():
                        own = c[batch.own][rows]
                        for n, j2 in squares.items():
                            sums[k][n] += torch.tensordot(own.square(), j2, dims=1)
                count += len(y)
    return _finish(sums, count, shared=mode == "batch")


def _add_squares(sums: dict[str, Tensor], grads: dict[str, Tensor | None]) -> None:
    """sums += g^2 for one batch's gradient, summed over processes first (see
    :func:`fisher_diagonal`); a parameter the objective does not reach (no gradient, in
    every process alike: they run the same graph) adds nothing."""
    all_reduce_sum_(g for g in grads.values() if g is not None)
    for n, g in grads.items():
        if g is not None:
            sums[n] += g.square()
