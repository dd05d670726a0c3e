"""The SAE architectures: ReLU (L1), TopK, BatchTopK and JumpReLU, and `make_sae` to build one by name.

Also the chapter's exercise references for the forward pass, the TopK activation and the L1 loss.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_finite,
    expect_ndim,
    expect_number,
    expect_range,
    expect_same_shape,
    expect_shape,
)
from .base import SAE, TrainForward
from .sparse import _check_k, _decode, _encode, use_sparse_topk

__all__ = [
    "ARCHITECTURES",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "TopKSAE",
    "decoder_weighted_l1",
    "make_sae",
    "sae_forward",
    "sae_loss",
    "topk_activation",
]

ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu")


def decoder_weighted_l1(z: Float[Tensor, "batch d_sae"], W_dec: Float[Tensor, "d_sae d_in"]) -> Tensor:
    """mean_b sum_i z_i ||W_dec_i||: the L1 of the codes, each latent weighted by its decoder norm.

    Chapter 02: sparse autoencoders.

    Weighting by the norm stops the SAE from shrinking z and growing W_dec to dodge the penalty.
    """
    W_dec = expect_ndim(W_dec, 2, "W_dec", "[d_sae, d_in]")
    z = _expect_codes(z, W_dec.shape[0])
    return (z * W_dec.norm(dim=1)).sum(-1).mean()


def topk_activation(pre: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """Keep the k largest pre-activations of each row (then ReLU); zero elsewhere. Same shape as pre.

    Chapter 02: sparse autoencoders. Exercise 02.2 (the reference).
    """
    pre = expect_dtype(_expect_codes(pre, None, "pre"), "float", "pre")
    vals, idx = pre.topk(_check_k(k, pre.shape[-1]), dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, idx, vals.relu())


def _expect_codes(z: object, d_sae: int | None, name: str = "z") -> Tensor:
    """z as a tensor [..., d_sae] (any last size when d_sae is None). Chapter 02: sparse autoencoders."""
    z = expect_dtype(z, "float", name)
    if z.ndim == 0 or (d_sae is not None and z.shape[-1] != d_sae):
        want = "d_sae" if d_sae is None else f"d_sae = {d_sae} (W_dec's rows)"
        raise TutorialInputError(f"{name} must be [..., d_sae] with last dimension {want}, got {tuple(z.shape)}.")
    return z


class ReLUSAE(SAE):
    """ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, April 2024 update).

    Chapter 02: sparse autoencoders.

    penalty = l1_coeff * ramp * mean_b sum_i z_i ||W_dec_i||, where ramp rises linearly from 0 to 1
    over the first `l1_warmup` fraction of training. Decoder norms stay free (the penalty sees them).
    """

    architecture = "relu"
    unit_norm_decoder = False

    def __init__(self, d_in: int, d_sae: int, *, l1_coeff: float = 5.0, l1_warmup: float = 0.05, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        self.l1_coeff = float(expect_range(l1_coeff, "l1_coeff", 0.0))
        self.l1_warmup = float(expect_range(l1_warmup, "l1_warmup", 0.0, 1.0))

    def activation(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:  # noqa: ARG002 - SAE.penalty's interface
        ramp = 1.0 if self.l1_warmup == 0 else min(1.0, frac / self.l1_warmup)
        return self.l1_coeff * ramp * decoder_weighted_l1(z, self.W_dec)


class TopKSAE(SAE):
    """TopK SAE (Gao et al. 2024): keep the k largest pre-activations per row, then ReLU.

    Chapter 02: sparse autoencoders.

    `sparse=None` picks the sparse path by `use_sparse_topk`; True/False force it. Both paths give
    the same numbers (tests check values and gradients).
    """

    architecture = "topk"
    uses_aux = True

    def __init__(self, d_in: int, d_sae: int, *, k: int = 8, sparse: bool | None = None, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        if not isinstance(k, int) or not 1 <= k <= d_sae:
            raise TutorialInputError(f"k must be an int in [1, d_sae={d_sae}], got {k!r}.")
        self.k = k
        self.sparse = sparse

    def activation(self, pre: Tensor) -> Tensor:
        return topk_activation(pre, self.k)

    def uses_sparse(self, batch: int) -> bool:  # noqa: ARG002 - the rule may depend on the batch; today it does not
        return use_sparse_topk(self.k, self.d_sae) if self.sparse is None else bool(self.sparse)

    def train_forward(self, x: Tensor, frac: float) -> TrainForward:
        if not self.uses_sparse(x.shape[0]):
            return super().train_forward(x, frac)
        vals, idx, pre = _encode(x, self.W_enc, self.b_enc, self.k)
        x_hat = _decode(vals, idx, self.W_dec) + self.b_dec
        with torch.no_grad():
            live = vals > 0
            fired = torch.zeros(self.d_sae, dtype=torch.bool, device=x.device)
            fired[idx[live]] = True
            l0 = live.sum(1).float().mean()
        return TrainForward(x_hat, pre, fired, l0, x.new_zeros(()), sparse_x=x)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = self.check_input(x.reshape(-1, shape[-1]) if x.ndim != 2 else x)
        if self.uses_sparse(x2.shape[0]):
            vals, idx, _ = _encode(x2, self.W_enc, self.b_enc, self.k)
            return (_decode(vals, idx, self.W_dec) + self.b_dec).reshape(shape)
        return self.decode(self.activation(self.pre_acts(x2))).reshape(shape)

    def extra_cfg(self) -> dict:
        return {"k": self.k, "rescale_acts_by_decoder_norm": False}


class BatchTopKSAE(SAE):
    """BatchTopK SAE (Bussmann et al. 2024): keep the k * batch largest activations of the whole batch.

    Chapter 02: sparse autoencoders.

    Training tracks a threshold (an exponential average of the smallest kept activation); in eval
    mode the SAE is a JumpReLU with that threshold, which is how it is saved for SAELens.
    """

    architecture = "batchtopk"
    uses_aux = True
    threshold: Tensor  # a buffer, a scalar

    def __init__(self, d_in: int, d_sae: int, *, k: int = 8, threshold_lr: float = 0.01, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        if not isinstance(k, int) or not 1 <= k <= d_sae:
            raise TutorialInputError(f"k must be an int in [1, d_sae={d_sae}], got {k!r}.")
        self.k = k
        self.threshold_lr = threshold_lr
        self.register_buffer("threshold", torch.zeros((), device=self.W_enc.device, dtype=self.W_enc.dtype))

    def activation(self, pre: Tensor) -> Tensor:
        if not self.training:
            return pre * (pre > self.threshold)
        acts = pre.relu()
        flat = acts.reshape(-1)
        vals, idx = flat.topk(min(self.k * acts.shape[0], flat.numel()), sorted=False)
        z = torch.zeros_like(flat).scatter(0, idx, vals).reshape(acts.shape)
        with torch.no_grad():
            kept = vals[vals > 0]
            if kept.numel():
                self.threshold.lerp_(kept.min(), self.threshold_lr)
        return z

    def extra_cfg(self) -> dict:
        return {"k": self.k}


class _JumpReLUFn(torch.autograd.Function):
    """z = pre * H(pre - theta); d/dtheta via a rectangle-kernel straight-through estimator.

    Chapter 02: sparse autoencoders.
    """

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):  # pyright: ignore[reportIncompatibleMethodOverride]
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        window = ((pre - theta).abs() < eps / 2).to(g.dtype)
        grad_theta = -(theta / eps) * (window * g).sum(0)
        return g * (pre > theta), grad_theta, None


class _StepFn(torch.autograd.Function):
    """H(pre - theta) with the straight-through gradient to theta only (Rajamanoharan et al. 2024).

    Chapter 02: sparse autoencoders.
    """

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):  # pyright: ignore[reportIncompatibleMethodOverride]
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        window = ((pre - theta).abs() < eps / 2).to(g.dtype)
        return None, -(1.0 / eps) * (window * g).sum(0), None


class JumpReLUSAE(SAE):
    """JumpReLU SAE: z = pre * [pre > threshold], a learned threshold per latent, L0 penalty.

    Chapter 02: sparse autoencoders.

    The step has no gradient; a straight-through estimator with a rectangle kernel of width
    `bandwidth` gives the threshold one (Rajamanoharan et al. 2024). The threshold is trained as
    log_threshold; `threshold` is what SAELens stores. The L0 coefficient warms up like ReLU's L1.
    """

    architecture = "jumprelu"

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        *,
        l0_coeff: float = 1e-3,
        bandwidth: float = 0.05,
        init_threshold: float = 0.1,
        l0_warmup: float = 0.05,
        **kwargs,
    ):
        super().__init__(d_in, d_sae, **kwargs)
        self.l0_coeff = float(expect_range(l0_coeff, "l0_coeff", 0.0))
        self.bandwidth = float(expect_range(bandwidth, "bandwidth", 1e-8))
        self.l0_warmup = float(expect_range(l0_warmup, "l0_warmup", 0.0, 1.0))
        expect_range(init_threshold, "init_threshold", 1e-8)
        self.log_threshold = nn.Parameter(
            torch.full((d_sae,), math.log(init_threshold), device=self.W_enc.device, dtype=self.W_enc.dtype)
        )

    @property
    def threshold(self) -> Tensor:
        return self.log_threshold.exp()

    def activation(self, pre: Tensor) -> Tensor:
        return _JumpReLUFn.apply(pre, self.threshold, self.bandwidth)

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:  # noqa: ARG002 - SAE.penalty's interface
        ramp = 1.0 if self.l0_warmup == 0 else min(1.0, frac / self.l0_warmup)
        return self.l0_coeff * ramp * _StepFn.apply(pre, self.threshold, self.bandwidth).sum(-1).mean()


CLASSES: dict[str, type[SAE]] = {"relu": ReLUSAE, "topk": TopKSAE, "batchtopk": BatchTopKSAE, "jumprelu": JumpReLUSAE}


def make_sae(architecture: str, d_in: int, d_sae: int, **kwargs) -> SAE:
    """Build an SAE by name: "relu", "topk", "batchtopk" or "jumprelu"; kwargs go to the class.

    Chapter 02: sparse autoencoders.
    """
    expect_choice(architecture, ARCHITECTURES, "architecture")
    return CLASSES[architecture](d_in, d_sae, **kwargs)


# ---- the chapter's exercise references (the notebook's signatures, built on the kernels above)


def sae_forward(
    x: Float[Tensor, "batch d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
) -> tuple[Float[Tensor, "batch d_sae"], Float[Tensor, "batch d_in"]]:
    """ReLU SAE: z = relu(x @ W_enc + b_enc), x_hat = z @ W_dec + b_dec; returns (z, x_hat).

    Chapter 02: sparse autoencoders. Exercise 02.1 (the reference).
    """
    W_enc = expect_ndim(W_enc, 2, "W_enc", "[d_in, d_sae]")
    d_in, d_sae = W_enc.shape
    expect_shape(b_enc, (d_sae,), "b_enc", "[d_sae]")
    expect_shape(W_dec, (d_sae, d_in), "W_dec", "[d_sae, d_in]")
    expect_shape(b_dec, (d_in,), "b_dec", "[d_in]")
    for name, value in (("x", x), ("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
        expect_finite(value, name)
    sae = ReLUSAE(W_enc.shape[0], W_enc.shape[1])
    with torch.no_grad():
        for name, value in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
            getattr(sae, name).copy_(value)
        z = sae.encode(x)
        return z, sae.decode(z)


def sae_loss(
    x: Float[Tensor, "batch d_in"],
    x_hat: Float[Tensor, "batch d_in"],
    z: Float[Tensor, "batch d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    l1_coeff: float,
) -> Tensor:
    """Squared error summed over d_in, mean over the batch, plus l1_coeff * mean_b sum_i z_i ||W_dec_i||.

    Chapter 02: sparse autoencoders. Exercise 02.3 (the reference): the loss `ReLUSAE` trains with,
    with its L1 warm-up done.
    """
    expect_same_shape(expect_ndim(x, 2, "x", "[batch, d_in]"), x_hat, "x and x_hat")
    expect_shape(z, (x.shape[0], None), "z", "[batch, d_sae]")
    expect_number(l1_coeff, "l1_coeff", 0.0)
    with torch.no_grad():
        return (x_hat - x).pow(2).sum(-1).mean() + float(l1_coeff) * decoder_weighted_l1(z, W_dec.float())
