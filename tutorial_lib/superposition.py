"""Toy models of superposition (Elhage et al. 2022), trained as many instances at once.

One `ToyModel` holds `n_instances` independent models: weights W [instances, features, hidden]
and biases b [instances, features]. Each instance sees its own feature probability and
per-feature importance, so a single batched training run sweeps a whole grid of settings.
The measures below (features represented, dimensionality, interference, 2-D angles) read
the geometry the models learn.
"""

from __future__ import annotations

import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from .progress import progress
from .validation import TutorialInputError, expect_choice, expect_dtype, expect_ndim, expect_range, expect_shape

OUTPUTS = ("relu", "linear")

# Labels of `classify_two_feature_solution`, in the order of its integer codes.
PHASES = ("not represented", "dedicated dimension", "superposition")


# --------------------------------------------------------------------------- validation helpers


def _probability_tensor(p: float | Tensor, n_instances: int, name: str = "feature_probability") -> Tensor:
    """A float or a [instances] tensor of probabilities -> a [instances] float tensor, checked in [0, 1]."""
    if not isinstance(p, Tensor):
        if not isinstance(p, (int, float)):
            raise TutorialInputError(f"{name} must be a number or a tensor [instances], got {type(p).__name__}.")
        expect_range(float(p), name, 0, 1)
        return torch.full((n_instances,), float(p))
    p = expect_dtype(p, "float", name)
    if p.ndim == 0:
        p = p.expand(n_instances)
    expect_shape(p, (n_instances,), name, "[instances]")
    if not ((p >= 0) & (p <= 1)).all():
        raise TutorialInputError(
            f"{name} must lie in [0, 1], got values from {p.min().item():.3g} to {p.max().item():.3g}."
        )
    return p


def _importance_tensor(importance: float | Tensor, n_instances: int, n_features: int) -> Tensor:
    """A float, a [features] or a [instances, features] tensor -> [instances, features], checked >= 0."""
    if not isinstance(importance, Tensor):
        if not isinstance(importance, (int, float)):
            raise TutorialInputError(
                f"importance must be a number or a tensor [features] / [instances, features], got {type(importance).__name__}."
            )
        importance = torch.tensor(float(importance))
    importance = expect_dtype(importance, "float", "importance")
    if importance.ndim == 0:
        importance = importance.expand(n_instances, n_features)
    elif importance.ndim == 1:
        expect_shape(importance, (n_features,), "importance", "[features]")
        importance = importance.expand(n_instances, n_features)
    else:
        expect_shape(importance, (n_instances, n_features), "importance", "[instances, features]")
    if (importance < 0).any():
        raise TutorialInputError("importance must be non-negative: it weights a squared error.")
    return importance


def _check_weights(W: object, name: str = "W") -> Tensor:
    W = expect_ndim(W, 3, name, "[instances, features, hidden]")
    return expect_dtype(W, "float", name)


# --------------------------------------------------------------------------- data


def generate_batch(
    n_batch: int,
    feature_probability: float | Float[Tensor, " inst"],
    n_features: int,
    n_instances: int | None = None,
    correlated_pairs: int = 0,
    anticorrelated_pairs: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Float[Tensor, "batch inst feat"]:
    """Synthetic sparse features: each is present with probability p (its instance's), then uniform in [0, 1].

    The first `2 * correlated_pairs` features come in pairs that are present together; the next
    `2 * anticorrelated_pairs` in pairs of which at most one is present (the pair is active with
    probability 2p, capped at 1, then one of the two chosen). The rest are independent.
    """
    if isinstance(feature_probability, Tensor) and n_instances is None:
        n_instances = feature_probability.numel()
    n_instances = 1 if n_instances is None else n_instances
    for value, name in ((n_batch, "n_batch"), (n_features, "n_features"), (n_instances, "n_instances")):
        if not isinstance(value, int) or value < 1:
            raise TutorialInputError(f"{name} must be a positive int, got {value!r}.")
    for value, name in ((correlated_pairs, "correlated_pairs"), (anticorrelated_pairs, "anticorrelated_pairs")):
        if not isinstance(value, int) or value < 0:
            raise TutorialInputError(f"{name} must be a non-negative int, got {value!r}.")
    n_paired = 2 * (correlated_pairs + anticorrelated_pairs)
    if n_paired > n_features:
        raise TutorialInputError(
            f"{correlated_pairs} correlated and {anticorrelated_pairs} anti-correlated pairs need "
            f"{n_paired} features, but n_features is {n_features}."
        )
    if device is None:
        device = (
            generator.device
            if generator is not None
            else (feature_probability.device if isinstance(feature_probability, Tensor) else "cpu")
        )
    p = _probability_tensor(feature_probability, n_instances).to(device)
    return _generate(n_batch, p, n_features, correlated_pairs, anticorrelated_pairs, generator)


def _generate(
    n_batch: int,
    p: Tensor,
    n_features: int,
    correlated_pairs: int,
    anticorrelated_pairs: int,
    g: torch.Generator | None,
) -> Tensor:
    """generate_batch without the input checks; p is [instances] on the target device."""
    device, n_instances = p.device, p.shape[0]
    n_paired = 2 * (correlated_pairs + anticorrelated_pairs)
    if n_paired == 0:
        # One draw does both jobs: u < p with probability p, and then 1 - u/p is uniform on (0, 1].
        u = torch.rand(n_batch, n_instances, n_features, generator=g, device=device)
        return u.div_(p[:, None].clamp_min(1e-12)).neg_().add_(1).relu_()
    values = torch.rand(n_batch, n_instances, n_features, generator=g, device=device)
    parts = []
    if correlated_pairs:
        present = torch.rand(n_batch, n_instances, correlated_pairs, 1, generator=g, device=device) < p[:, None, None]
        parts.append(present.expand(-1, -1, -1, 2).flatten(-2))
    if anticorrelated_pairs:
        k = anticorrelated_pairs
        active = torch.rand(n_batch, n_instances, k, generator=g, device=device) < (2 * p[:, None]).clamp(max=1)
        first = torch.rand(n_batch, n_instances, k, generator=g, device=device) < 0.5
        parts.append(torch.stack([active & first, active & ~first], dim=-1).flatten(-2))
    n_independent = n_features - n_paired
    if n_independent:
        parts.append(torch.rand(n_batch, n_instances, n_independent, generator=g, device=device) < p[:, None])
    mask = torch.cat(parts, dim=-1)
    return values * mask


# --------------------------------------------------------------------------- model


def toy_model_forward(
    W: Float[Tensor, "inst feat hidden"],
    b: Float[Tensor, "inst feat"],
    x: Float[Tensor, "batch inst feat"],
    output: str = "relu",
    hidden_relu: bool = False,
) -> Float[Tensor, "batch inst feat"]:
    """x' = ReLU(W^T W x + b) for each instance (output="linear" drops the ReLU; hidden_relu adds one on h = W x)."""
    W = _check_weights(W)
    n_inst, n_feat, _ = W.shape
    expect_shape(b, (n_inst, n_feat), "b", "[instances, features]")
    expect_shape(x, (None, n_inst, n_feat), "x", "[batch, instances, features]")
    expect_choice(output, OUTPUTS, "output")
    return _forward(W, b, x, output, hidden_relu)


def _forward(W: Tensor, b: Tensor, x: Tensor, output: str, hidden_relu: bool) -> Tensor:
    """toy_model_forward without the input checks (the training loop calls it every step)."""
    h = torch.einsum("bif,ifh->bih", x, W)  # h = W x, per instance
    if hidden_relu:
        h = torch.relu(h)
    out = torch.einsum("bih,ifh->bif", h, W) + b  # W^T h + b
    return torch.relu(out) if output == "relu" else out


def importance_weighted_loss(
    out: Float[Tensor, "batch inst feat"],
    x: Float[Tensor, "batch inst feat"],
    importance: Float[Tensor, "inst feat"] | Float[Tensor, " feat"],
) -> Float[Tensor, " inst"]:
    """Per-instance loss: the mean over batch and features of importance_i * (x_i - x'_i)^2."""
    x = expect_ndim(x, 3, "x", "[batch, instances, features]")
    expect_shape(out, tuple(x.shape), "out", "[batch, instances, features] like x")
    importance = _importance_tensor(importance, x.shape[1], x.shape[2]).to(x.device)
    return _weighted_loss(out, x, importance)


def _weighted_loss(out: Tensor, x: Tensor, importance: Tensor) -> Tensor:
    return (importance * (x - out) ** 2).mean(dim=(0, 2))


class ToyModel(nn.Module):
    """`n_instances` toy models trained side by side: W [inst, feat, hidden], b_final [inst, feat].

    feature_probability: a float or [inst] (1 - sparsity); importance: a float, [feat] or [inst, feat].
    output="relu" is the paper's ReLU output model, "linear" the linear one; hidden_relu=True adds
    a ReLU on the hidden layer (a privileged basis: the hidden units become neurons).
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int,
        n_instances: int = 1,
        feature_probability: float | Tensor = 1.0,
        importance: float | Tensor = 1.0,
        output: str = "relu",
        hidden_relu: bool = False,
        correlated_pairs: int = 0,
        anticorrelated_pairs: int = 0,
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        for value, name in ((n_features, "n_features"), (n_hidden, "n_hidden"), (n_instances, "n_instances")):
            if not isinstance(value, int) or value < 1:
                raise TutorialInputError(f"{name} must be a positive int, got {value!r}.")
        expect_choice(output, OUTPUTS, "output")
        if 2 * (correlated_pairs + anticorrelated_pairs) > n_features:
            raise TutorialInputError(
                f"{correlated_pairs} correlated and {anticorrelated_pairs} anti-correlated pairs need more "
                f"than the {n_features} features."
            )
        self.n_features, self.n_hidden, self.n_instances = n_features, n_hidden, n_instances
        self.output, self.hidden_relu = output, hidden_relu
        self.correlated_pairs, self.anticorrelated_pairs = correlated_pairs, anticorrelated_pairs
        # Initialised on a CPU generator, then moved: the same seed gives the same model on every device.
        g = torch.Generator().manual_seed(seed)
        std = math.sqrt(2.0 / (n_features + n_hidden))  # Xavier normal
        W = torch.randn(n_instances, n_features, n_hidden, generator=g) * std
        self.W = nn.Parameter(W.to(device))
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features, device=device))
        p = _probability_tensor(feature_probability, n_instances).clone()
        self.register_buffer("feature_probability", p.to(device))
        imp = _importance_tensor(importance, n_instances, n_features).clone()
        self.register_buffer("importance", imp.to(device))

    def forward(self, x: Float[Tensor, "batch inst feat"]) -> Float[Tensor, "batch inst feat"]:
        expect_shape(x, (None, self.n_instances, self.n_features), "x", "[batch, instances, features]")
        return _forward(self.W, self.b_final, x, self.output, self.hidden_relu)

    def generate_batch(
        self, n_batch: int, generator: torch.Generator | None = None
    ) -> Float[Tensor, "batch inst feat"]:
        """A batch of this model's data (its probabilities and feature correlations)."""
        if not isinstance(n_batch, int) or n_batch < 1:
            raise TutorialInputError(f"n_batch must be a positive int, got {n_batch!r}.")
        return _generate(
            n_batch,
            self.feature_probability,
            self.n_features,
            self.correlated_pairs,
            self.anticorrelated_pairs,
            generator,
        )

    def loss(self, x: Float[Tensor, "batch inst feat"]) -> Float[Tensor, " inst"]:
        """The importance-weighted loss of each instance on the batch x."""
        return _weighted_loss(self(x), x, self.importance)


def train(
    model: ToyModel,
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 0,
    desc: str = "toy models",
) -> Float[Tensor, "logged inst"]:
    """Train every instance at once with Adam on fresh batches; returns the per-instance loss every `log_every` steps.

    The total loss is the sum of the instances' losses, so each instance gets exactly the
    gradient it would get alone (Adam is element-wise: the runs stay independent).
    """
    if not isinstance(model, ToyModel):
        raise TutorialInputError(f"model must be a ToyModel, got {type(model).__name__}.")
    for value, name in ((steps, "steps"), (batch_size, "batch_size")):
        if not isinstance(value, int) or value < 1:
            raise TutorialInputError(f"{name} must be a positive int, got {value!r}.")
    expect_range(lr, "lr", 0.0)
    device = model.W.device
    g = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in progress(range(steps), desc=desc):
        x = model.generate_batch(batch_size, g)
        loss = model.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            history.append(loss.detach())
    if not history:
        history.append(loss.detach())
    return torch.stack(history)


# --------------------------------------------------------------------------- measures


def features_represented(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, " inst"]:
    """||W||_F^2 per instance: about the number of features the model represents (each at norm ~1)."""
    W = _check_weights(W)
    return W.pow(2).sum(dim=(1, 2))


def dimensions_per_feature(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, " inst"]:
    """m / ||W||_F^2: hidden dimensions spent per represented feature (1/2 for antipodal pairs)."""
    W = _check_weights(W)
    return W.shape[2] / features_represented(W).clamp_min(1e-12)


def _unit_rows(W: Tensor, eps: float = 1e-8) -> Tensor:
    return W / W.norm(dim=-1, keepdim=True).clamp_min(eps)


def feature_dimensionality(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat"]:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2: the share of a dimension feature i owns (1, 1/2, 2/5, ...; ~0 if absent)."""
    W = _check_weights(W)
    overlaps = einops.einsum(_unit_rows(W), W, "inst i hidden, inst j hidden -> inst i j")
    return W.pow(2).sum(-1) / overlaps.pow(2).sum(-1).clamp_min(1e-12)


def interference(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat"]:
    """sum_{j != i} (W_i_hat . W_j)^2: how much of other features leaks onto feature i's direction."""
    W = _check_weights(W)
    overlaps = einops.einsum(_unit_rows(W), W, "inst i hidden, inst j hidden -> inst i j").pow(2)
    return overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)


def gram(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat feat"]:
    """W W^T per instance: norms on the diagonal, interference off it (the paper's matrix plots)."""
    W = _check_weights(W)
    return einops.einsum(W, W, "inst i hidden, inst j hidden -> inst i j")


def feature_angles(W: Float[Tensor, "inst feat 2"]) -> Float[Tensor, "inst feat"]:
    """The direction of each feature in a 2-D hidden space, in degrees in [0, 360)."""
    W = _check_weights(W)
    if W.shape[2] != 2:
        raise TutorialInputError(f"feature_angles needs a 2-D hidden space, got hidden size {W.shape[2]}.")
    return torch.rad2deg(torch.atan2(W[..., 1], W[..., 0])) % 360


def adjacent_angle_gaps(W: Float[Tensor, "feat 2"], min_norm: float = 0.5) -> Float[Tensor, " represented"]:
    """Angles (degrees) between neighbouring represented features of one 2-D instance, going round the circle."""
    W = expect_ndim(W, 2, "W", "[features, 2] (one instance)")
    angles = feature_angles(W[None])[0][W.norm(dim=-1) > min_norm].sort().values
    if angles.numel() < 2:
        return torch.full((angles.numel(),), 360.0, device=W.device)
    return torch.diff(torch.cat([angles, angles[:1] + 360]))


def neuron_feature_counts(W: Float[Tensor, "inst feat hidden"], threshold: float = 0.3) -> Int[Tensor, "inst hidden"]:
    """For a privileged basis: how many features each neuron reads with a weight above `threshold` (>1: polysemantic)."""
    W = _check_weights(W)
    return (W.abs() > threshold).sum(dim=1)


def classify_two_feature_solution(W: Float[Tensor, "inst 2 1"], threshold: float = 0.5) -> Int[Tensor, " inst"]:
    """Which of the phase diagram's solutions each 2-feature, 1-dimension instance learned (codes index PHASES).

    Feature 1 is the extra feature. 0: it is not represented (|W_1| < threshold); 1: it owns the
    dimension (the other feature is not represented); 2: both are represented (superposition).
    """
    W = _check_weights(W)
    if W.shape[1:] != (2, 1):
        raise TutorialInputError(
            f"W must have shape [instances, 2, 1] (2 features, 1 dimension), got {tuple(W.shape)}."
        )
    norms = W.norm(dim=-1)
    extra, other = norms[:, 1] > threshold, norms[:, 0] > threshold
    codes = torch.zeros(W.shape[0], dtype=torch.long, device=W.device)
    codes[extra & ~other] = 1
    codes[extra & other] = 2
    return codes


def two_feature_losses(importance: float, feature_probability: float) -> dict[str, float]:
    """Expected loss (summed over the 2 features, importance 1 and `importance`) of the phase diagram's candidates.

    Closed forms for the ReLU model with x_i ~ U[0, 1] w.p. p: keeping one feature with
    weight 1 and bias 0 loses the other feature's E[x^2] = p/3; the antipodal pair W = (1, -1),
    b = 0 makes the features interfere only when both are present (through the ReLU).
    """
    p = expect_range(float(feature_probability), "feature_probability", 0, 1)
    r = expect_range(float(importance), "importance", 0)
    ex2 = p / 3  # E[x^2] for one feature
    # Both present (prob p^2): out_0 = relu(x0 - x1), error on feature 0 is min(x0, x1)...: E[min(x0,x1)^2] = 1/6.
    both = p * p / 6
    return {
        "not represented": r * ex2,
        "dedicated dimension": ex2,
        "superposition": (1 + r) * both,
    }
