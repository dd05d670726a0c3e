"""The tuned lens (Belrose et al. 2023): per layer an affine translator h -> h + A h + b (A, b start
at zero, so training starts from the logit lens), trained so that read_out(translator(h)) matches the
model's final distribution in KL. The last entry of the stack is the model's output and gets none."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..validation import TutorialInputError, expect_int_at_least, expect_model, expect_tokens
from .logit import lens_kl, read_out, residual_stack


class TunedLens(nn.Module):
    """One affine translator per block input (n_layers of them); the final entry passes unchanged.

    Chapter 08: lenses."""

    def __init__(self, n_layers: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_layers, d_model, d_model))
        self.bias = nn.Parameter(torch.zeros(n_layers, d_model))

    def forward(self, stack: Float[Tensor, "layer_plus_1 *rest d_model"]) -> Tensor:
        """Translate each entry of a residual stack (as `residual_stack` returns it).

        Chapter 08: lenses."""
        n = self.weight.shape[0]
        if stack.shape[0] != n + 1 or stack.shape[-1] != self.weight.shape[-1]:
            raise TutorialInputError(
                f"stack must be [{n + 1}, ..., {self.weight.shape[-1]}] (residual_stack's shape), got {list(stack.shape)}."
            )
        early = stack[:n]
        flat = early.reshape(n, -1, early.shape[-1])
        moved = flat + flat @ self.weight.transpose(1, 2) + self.bias[:, None]
        return torch.cat([moved.reshape(early.shape), stack[n:]])


def _stack_and_target(model, tokens: Tensor) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        return residual_stack(model, cache).detach(), logits.detach()


def train_tuned_lens(
    model,
    tokens: Tensor,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
    mask: Tensor | None = None,
    shuffle_targets: bool = False,
) -> tuple[TunedLens, list[float]]:
    """Fit a TunedLens on the residual streams of `tokens` (full batch, Adam), minimising the summed
    per-layer KL(final || lens) over `mask`'s positions. `shuffle_targets=True` is the control: each
    position's target is another position's final distribution, so no translator can read the stream.
    Returns the lens and the loss per step.

    Exercise 08.3. Chapter 08: lenses."""
    model = expect_model(model)
    tokens = expect_tokens(tokens, model=model)
    expect_int_at_least(steps, "steps")
    stack, final = _stack_and_target(model, tokens)
    gen = torch.Generator().manual_seed(seed)
    if shuffle_targets:
        flat = final.reshape(-1, final.shape[-1])
        final = flat[torch.randperm(flat.shape[0], generator=gen)].view_as(final)
    torch.manual_seed(seed)
    lens = TunedLens(model.cfg.n_layers, model.cfg.d_model).to(stack.device)
    opt = torch.optim.Adam(lens.parameters(), lr=lr)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    losses = []
    try:
        for _ in range(steps):
            loss = lens_kl(read_out(model, lens(stack))[:-1], final, mask).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:  # the model is the caller's: give its parameters back as they came
        for p, flag in flags:
            p.requires_grad_(flag)
    return lens, losses


def tuned_lens_kl(model, lens: TunedLens, tokens: Tensor, mask: Tensor | None = None) -> Float[Tensor, " layer"]:
    """Per-layer KL(final || tuned lens) on `tokens` (evaluate on tokens the lens was not trained on).

    Chapter 08: lenses."""
    stack, final = _stack_and_target(model, expect_tokens(tokens, model=model))
    with torch.no_grad():
        return lens_kl(read_out(model, lens(stack)), final, mask)


def logit_lens_kl(model, tokens: Tensor, mask: Tensor | None = None) -> Float[Tensor, " layer"]:
    """Per-layer KL(final || logit lens) on `tokens`; the last entry is 0.

    Chapter 08: lenses."""
    stack, final = _stack_and_target(model, expect_tokens(tokens, model=model))
    with torch.no_grad():
        return lens_kl(read_out(model, stack), final, mask)


def fit_linear_lens(
    model, tokens: Tensor, mask: Tensor | None = None, ridge: float = 1e-3, shuffle_targets: bool = False
) -> TunedLens:
    """A TunedLens whose translators are fitted in closed form: per layer, the affine map from that
    layer's residual stream to the final one by ridge-regularised least squares over `mask`'s positions
    (the "linear shortcut" of Din et al. 2023). No pass through the unembedding, so it fits in seconds
    on a real model's 30 layers, where the KL-trained lens costs minutes; it is a worse lens than
    `train_tuned_lens` (it matches residual vectors, not distributions). `shuffle_targets=True` is the
    control: each position's target is another position's final residual stream.

    Chapter 08: lenses."""
    model = expect_model(model)
    tokens = expect_tokens(tokens, model=model)
    n, d = model.cfg.n_layers, model.cfg.d_model
    names = {f"blocks.{i}.hook_resid_pre" for i in range(n)} | {f"blocks.{n - 1}.hook_resid_post"}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        stack = residual_stack(model, cache)
    rows = stack.reshape(n + 1, -1, d) if mask is None else stack[:, mask]
    if rows.shape[1] <= d:
        raise TutorialInputError(f"fit on more than d_model = {d} positions, got {rows.shape[1]}.")
    lens = TunedLens(n, d).to(stack.device)
    target = rows[-1].double()
    if shuffle_targets:
        target = target[torch.randperm(len(target), generator=torch.Generator().manual_seed(0))]
    eye = torch.eye(d + 1, dtype=torch.double, device=stack.device)
    for layer in range(n):
        x = torch.cat([rows[layer].double(), torch.ones_like(target[:, :1])], 1)
        gram = x.T @ x
        w = torch.linalg.solve(gram + ridge * gram.diagonal().mean() * eye, x.T @ target)
        with torch.no_grad():
            lens.weight[layer] = (w[:d] - eye[:d, :d]).T.float()
            lens.bias[layer] = w[d].float()
    return lens
