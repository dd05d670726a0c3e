"""Chapter 01's model: n_instances toy models (W [inst, feat, hidden], b [inst, feat]) trained side by side."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..progress import progress
from ..validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_int_at_least,
    expect_ndim,
    expect_range,
    expect_shape,
)
from .data import _generate, _importance_tensor, _probability_tensor

OUTPUTS = ("relu", "linear")


def _check_weights(W: object, name: str = "W") -> Tensor:
    W = expect_ndim(W, 3, name, "[instances, features, hidden]")
    return expect_dtype(W, "float", name)


def toy_model_forward(
    W: Float[Tensor, "inst feat hidden"],
    b: Float[Tensor, "inst feat"],
    x: Float[Tensor, "batch inst feat"],
    output: str = "relu",
    hidden_relu: bool = False,
) -> Float[Tensor, "batch inst feat"]:
    """x' = ReLU(W^T W x + b) for each instance (output="linear" drops the ReLU; hidden_relu adds one on h = W x).

    Chapter 01: toy models of superposition. Reference for Exercise 01.2.
    """
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
    """Per-instance loss: the mean over batch and features of importance_i * (x_i - x'_i)^2.

    Chapter 01: toy models of superposition. Reference for Exercise 01.3.
    """
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

    Chapter 01: toy models of superposition.
    """

    feature_probability: Tensor  # buffers [inst] and [inst, feat], registered in __init__
    importance: Tensor

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
            expect_int_at_least(value, name)
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
        expect_int_at_least(n_batch, "n_batch")
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

    Exercise 01.4. Chapter 01: toy models of superposition.
    """
    if not isinstance(model, ToyModel):
        raise TutorialInputError(f"model must be a ToyModel, got {type(model).__name__}.")
    for value, name in ((steps, "steps"), (batch_size, "batch_size")):
        expect_int_at_least(value, name)
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
