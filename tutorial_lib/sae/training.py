"""Training: `train_sae`, one Adam loop for every architecture, with LR warm-up/decay, dead-latent
tracking and AuxK; and the chapter's reference for one training step."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..progress import progress
from ..validation import (
    TutorialInputError,
    expect_dtype,
    expect_finite,
    expect_int_at_least,
    expect_range,
    expect_shape,
)
from .base import SAE, LossOutput

__all__ = ["TrainHistory", "default_dead_window", "train_sae", "train_sparse_sae", "train_topk", "training_step"]


@dataclass
class TrainHistory:
    """What `train_sae` saw: per logged step, the loss parts, L0 and the dead fraction.

    Chapter 02: sparse autoencoders.
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    aux: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    n_steps: int = 0
    n_samples: int = 0
    seconds: float = 0.0
    dead_window: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.n_samples / max(self.seconds, 1e-9)

    def log(self, step: int, out: LossOutput, dead: Tensor) -> None:
        """Record one step's loss parts, L0 and dead fraction."""
        self.steps.append(step)
        self.loss.append(out.loss.item())
        self.mse.append(out.mse.item())
        self.aux.append(out.aux.item())
        self.l0.append(out.l0.item())
        self.dead_fraction.append(dead.float().mean().item())


def default_dead_window(total_steps: int) -> int:
    """Steps without firing after which a latent counts as dead: 1/20 of the run, in [5, 1000].

    Chapter 02: sparse autoencoders.

    A fixed 1000 steps (SAELens's default) never triggers on the short runs a notebook can afford.
    """
    expect_int_at_least(total_steps, "total_steps")
    return int(min(1000, max(5, total_steps // 20)))


def _lr_factor(step: int, total: int, warmup: int, decay: int) -> float:
    """Linear warm-up over `warmup` steps, flat, then linear decay to 0 over the last `decay` steps.

    Chapter 02: sparse autoencoders.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if decay and step >= total - decay:
        return max(0.0, (total - step) / decay)
    return 1.0


def _tensor_batches(data: Tensor, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[Tensor]:
    """`steps` batches of rows of `data`, each epoch a fresh permutation drawn from `gen`.

    Chapter 02: sparse autoencoders.
    """
    n = data.shape[0]
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen).to(data.device)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            if done >= steps:
                return
            yield data[perm[s : s + batch_size]]
            done += 1


def _batches_and_mean(
    sae: SAE,
    data: Tensor | Iterable[Tensor],
    steps: int | None,
    epochs: float | None,
    batch_size: int,
    gen: torch.Generator,
) -> tuple[int, Iterator[Tensor], Tensor]:
    """(number of steps, the batches, the mean that b_dec starts at) for a tensor or an iterator.

    Chapter 02: sparse autoencoders.

    A tensor is shuffled with `gen` each epoch; an iterator's first batch gives the mean and is
    still the first batch trained on.
    """
    if isinstance(data, Tensor):
        expect_shape(data, (None, sae.d_in), "data", "[n_samples, d_in]")
        expect_dtype(data, "float", "data")
        expect_finite(data, "data")
        n = data.shape[0]
        per_epoch = max(1, n // batch_size)
        if steps is None:
            steps = max(1, round(per_epoch * (1.0 if epochs is None else epochs)))
        batches: Iterator[Tensor] = _tensor_batches(data, min(batch_size, n), steps, gen)
        mean = data.mean(0)
    else:
        if steps is None:
            if not hasattr(data, "__len__"):
                raise TutorialInputError("data is an iterator without len(): pass steps= to say how long to train.")
            steps = len(data)  # pyright: ignore[reportArgumentType]  # hasattr checked it above
        rest = iter(data)
        try:
            first = next(rest)
        except StopIteration:
            raise TutorialInputError("data yielded no batch.") from None
        expect_shape(first, (None, sae.d_in), "a batch of data", "[batch, d_in]")
        expect_finite(first, "a batch of data")
        mean = first.mean(0)
        batches = itertools.chain([first], rest)
    if not isinstance(steps, int) or steps < 1:
        raise TutorialInputError(f"steps must be a positive int, got {steps!r}.")
    return steps, batches, mean


def _run_steps(
    sae: SAE,
    batches: Iterator[Tensor],
    *,
    steps: int,
    lr: float,
    warmup: int,
    decay: int,
    window: int,
    aux_coeff: float,
    k_aux: int | None,
    log_every: int,
    desc: str,
    hist: TrainHistory,
) -> None:
    """The Adam loop: per step the LR schedule, the loss with AuxK on dead latents, a step that keeps
    decoder rows at unit norm, and the dead-latent counters. Fills `hist`, its time included.

    Chapter 02: sparse autoencoders.
    """
    device = sae.W_enc.device
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    since_fired = torch.zeros(sae.d_sae, dtype=torch.long, device=device)
    sae.train()
    sae.normalize_decoder()
    start = time.perf_counter()
    for step, x in progress(zip(range(steps), batches), desc=desc, total=steps):
        x = x.to(device=device, dtype=sae.W_enc.dtype)
        for group in opt.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, warmup, decay)
        dead = since_fired >= window
        out = sae.loss(x, dead=dead, aux_coeff=aux_coeff, k_aux=k_aux, frac=step / steps)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        sae.remove_parallel_grad()
        opt.step()
        sae.normalize_decoder()
        since_fired += 1
        since_fired[out.fired] = 0
        hist.n_steps += 1
        hist.n_samples += x.shape[0]
        if step % log_every == 0 or step == steps - 1:
            hist.log(step, out, dead)
    hist.seconds = time.perf_counter() - start


@torch.no_grad()
def _init_biases(sae: SAE, mean: Tensor, init_b_dec: bool, center_b_enc: bool) -> None:
    """b_dec at the data's mean (`init_b_dec`); b_enc at -b_dec @ W_enc (`center_b_enc`).

    Chapter 02: sparse autoencoders.
    """
    if init_b_dec:
        sae.b_dec.copy_(mean.to(device=sae.W_enc.device, dtype=sae.b_dec.dtype))
    if center_b_enc:
        sae.b_enc.copy_(-(sae.b_dec @ sae.W_enc))


def train_sae(
    sae: SAE,
    data: Tensor | Iterable[Tensor],
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 4096,
    lr: float = 1e-3,
    warmup_frac: float = 0.02,
    decay_frac: float = 0.2,
    dead_window: int | None = None,
    aux_coeff: float | None = None,
    k_aux: int | None = None,
    init_b_dec: bool = True,
    center_b_enc: bool = False,
    seed: int = 0,
    log_every: int = 50,
    desc: str = "training SAE",
) -> TrainHistory:
    """Train `sae` with Adam on an in-memory tensor [n, d_in] or an iterator of [batch, d_in] tensors.

    Chapter 02: sparse autoencoders.

    Length: `steps`, or `epochs` over a tensor (default 1 epoch), or the iterator's len(). The learning
    rate warms up over `warmup_frac` and decays linearly to 0 over the last `decay_frac` of steps.
    Dead latents (no firing for `dead_window` steps, default `default_dead_window(steps)`) feed the
    AuxK loss with weight `aux_coeff` (default 1/32 for TopK and BatchTopK, 0 otherwise).
    With `init_b_dec`, b_dec starts at the mean of the data (of the first batch for an iterator).
    With `center_b_enc`, b_enc starts at -b_dec @ W_enc (the encoder sees x - mean at step 0): a large mean
    (a real model's residual stream) would otherwise pick the same top k for every row, and latents die.
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    expect_range(lr, "lr", 0.0)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TutorialInputError(f"batch_size must be a positive int, got {batch_size!r}.")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    steps, batches, mean = _batches_and_mean(sae, data, steps, epochs, batch_size, gen)
    _init_biases(sae, mean, init_b_dec, center_b_enc)
    window = default_dead_window(steps) if dead_window is None else int(dead_window)
    if aux_coeff is None:
        aux_coeff = 1 / 32 if sae.uses_aux else 0.0
    hist = TrainHistory(dead_window=window)
    _run_steps(
        sae,
        batches,
        steps=steps,
        lr=lr,
        warmup=int(warmup_frac * steps),
        decay=int(decay_frac * steps),
        window=window,
        aux_coeff=aux_coeff,
        k_aux=k_aux,
        log_every=log_every,
        desc=desc,
        hist=hist,
    )
    sae.eval()
    return hist


def training_step(sae: SAE, x: Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One Adam step on the reconstruction loss of a unit-norm-decoder SAE; returns the loss before the step.

    Chapter 02: sparse autoencoders. Exercise 02.5 (the reference): the body of `train_sae`'s loop,
    without the schedule and AuxK.
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    x = expect_finite(sae.check_input(x), "x")
    loss = sae.loss(x).loss
    optimizer.zero_grad()
    loss.backward()
    sae.remove_parallel_grad()
    optimizer.step()
    sae.normalize_decoder()
    return loss.item()


def train_topk(
    sae: SAE,
    data: Tensor,
    steps: int,
    *,
    batch_size: int = 256,
    lr: float = 2e-3,
    dead_window: int = 50,
    aux_coeff: float = 1 / 32,
    seed: int = 0,
) -> list[float]:
    """The whole TopK training loop, without `train_sae`'s schedule: b_dec at the data mean, Adam, unit-norm
    decoder rows with the parallel gradient removed, AuxK on latents dead for `dead_window` steps.
    Returns the squared error of each step's batch, before the step.

    Chapter 02: sparse autoencoders. Exercise 02.6 (the reference).
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    data = expect_finite(sae.check_input(data), "data")
    expect_int_at_least(steps, "steps")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    since_fired = torch.zeros(sae.d_sae, dtype=torch.long)
    with torch.no_grad():
        sae.b_dec.copy_(data.mean(0))
    sae.normalize_decoder()
    losses = []
    for _ in range(steps):
        x = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen)]
        out = sae.loss(x, dead=since_fired >= dead_window, aux_coeff=aux_coeff)
        opt.zero_grad()
        out.loss.backward()
        sae.remove_parallel_grad()
        opt.step()
        sae.normalize_decoder()
        since_fired += 1
        since_fired[out.fired.cpu()] = 0
        losses.append(out.mse.item())
    return losses


def train_sparse_sae(acts: Tensor) -> SAE:
    """An SAE for toy-lm's residual stream with EV >= 0.95 at L0 <= 4 on held-out text: TopK with k = 4,
    600 steps of 1,024 rows (about 4 s of CPU).

    Chapter 02: sparse autoencoders. Exercise 02.10 (open; one solution that passes).
    """
    acts = expect_finite(expect_shape(acts, (None, None), "acts", "[n, d_in]"), "acts")
    from .architectures import TopKSAE

    sae = TopKSAE(acts.shape[1], 4 * acts.shape[1], k=4, seed=0).to(acts.device)
    train_sae(sae, acts, steps=600, batch_size=1024, lr=5e-3, seed=0)
    return sae
