"""Chapter 03's probe datasets: activations at chosen tokens, their labels, and a split that keeps
each prompt on one side.

Shapes: `n` rows (one per chosen token), `d` activation width (trailing dims of the hook flattened).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..validation import (
    TutorialInputError,
    expect_dtype,
    expect_finite,
    expect_ids,
    expect_model,
    expect_ndim,
    expect_range,
    expect_shape,
    expect_tensor,
    expect_tokens,
    model_device,
)

Positions = str | int | Tensor | None

__all__ = [
    "Positions",
    "ProbeDataset",
    "check_hook",
    "check_labels",
    "collect_activations",
    "labels_at",
    "make_dataset",
    "position_mask",
    "probe_rows",
    "rows_from_act",
    "split_prompts",
    "valid_hook_names",
]


@dataclass
class ProbeDataset:
    """One row per probed token: activation, label, which prompt it came from, and the split.

    `labels` is [n] (int class ids or float scalars) or [n, k] (float targets for ridge).
    `train_idx` / `test_idx` index rows; whole prompts sit on one side of the split.

    Chapter 03: probing.
    """

    acts: Float[Tensor, "n d"]
    labels: Tensor
    prompt_ids: Int[Tensor, " n"]
    train_idx: Int[Tensor, " n_train"]
    test_idx: Int[Tensor, " n_test"]
    positions: Int[Tensor, " n"] | None = None
    token_ids: Int[Tensor, " n"] | None = None
    hook_name: str | None = None

    def __post_init__(self) -> None:
        n = expect_ndim(self.acts, 2, "acts", "[n, d]").shape[0]
        expect_finite(self.acts, "acts")
        expect_finite(check_labels(self.labels, n), "labels")
        expect_shape(expect_ids(self.prompt_ids, "prompt_ids", 1 << 62), (n,), "prompt_ids", "[n]")
        expect_ids(self.train_idx, "train_idx", n, ndim=1)
        expect_ids(self.test_idx, "test_idx", n, ndim=1)

    def __len__(self) -> int:
        return self.acts.shape[0]

    @property
    def X_train(self) -> Float[Tensor, "n_train d"]:
        return self.acts[self.train_idx]

    @property
    def X_test(self) -> Float[Tensor, "n_test d"]:
        return self.acts[self.test_idx]

    @property
    def y_train(self) -> Tensor:
        return self.labels[self.train_idx]

    @property
    def y_test(self) -> Tensor:
        return self.labels[self.test_idx]

    def with_acts(self, acts: Float[Tensor, "n d"]) -> ProbeDataset:
        """The same rows, labels and split with other activations (e.g. a direction projected out)."""
        expect_shape(acts, (len(self), None), "acts", "[n, d]")
        return replace(self, acts=acts)

    def with_labels(self, labels: Tensor) -> ProbeDataset:
        """The same rows and split with other labels (e.g. control-task labels)."""
        expect_tensor(labels, "labels")
        if labels.shape[0] != len(self):
            raise TutorialInputError(
                f"labels must have {len(self)} rows (one per activation), got {tuple(labels.shape)}."
            )
        return replace(self, labels=labels)


def split_prompts(
    n_prompts: int, test_frac: float = 0.25, seed: int = 0
) -> tuple[Int[Tensor, " a"], Int[Tensor, " b"]]:
    """Seeded split of prompt indices 0..n_prompts-1 into (train, test), both sorted, both non-empty.

    Chapter 03: probing.
    """
    if not isinstance(n_prompts, int) or n_prompts < 2:
        raise TutorialInputError(f"need at least 2 prompts to split into train and test, got {n_prompts!r}.")
    expect_range(test_frac, "test_frac", 0.0, 1.0)
    n_test = min(max(1, round(test_frac * n_prompts)), n_prompts - 1)
    perm = torch.randperm(n_prompts, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def make_dataset(
    acts: Float[Tensor, "n d"],
    labels: Tensor,
    prompt_ids: Int[Tensor, " n"] | None = None,
    test_frac: float = 0.25,
    seed: int = 0,
    token_ids: Int[Tensor, " n"] | None = None,
    positions: Int[Tensor, " n"] | None = None,
    hook_name: str | None = None,
) -> ProbeDataset:
    """A ProbeDataset from raw activations; rows sharing a prompt id stay on one side of the split.

    Without prompt_ids every row is its own prompt (a plain seeded row split).

    Chapter 03: probing.
    """
    expect_ndim(acts, 2, "acts", "[n, d]")
    expect_dtype(acts, "float", "acts")
    n = acts.shape[0]
    check_labels(labels, n)
    if prompt_ids is None:
        prompt_ids = torch.arange(n, device=acts.device)
    expect_shape(prompt_ids, (n,), "prompt_ids", "[n]")
    expect_dtype(prompt_ids, "int", "prompt_ids")
    for name, t in (("token_ids", token_ids), ("positions", positions)):
        if t is not None:
            expect_shape(t, (n,), name, "[n]")
    prompt_ids = prompt_ids.to(acts.device)
    token_ids = None if token_ids is None else token_ids.to(acts.device)
    positions = None if positions is None else positions.to(acts.device)
    uniq, inverse = torch.unique(prompt_ids, return_inverse=True)
    train_p, test_p = split_prompts(len(uniq), test_frac, seed)
    is_test = torch.zeros(len(uniq), dtype=torch.bool)
    is_test[test_p] = True
    row_test = is_test.to(acts.device)[inverse]
    rows = torch.arange(n, device=acts.device)
    return ProbeDataset(
        acts, labels.to(acts.device), prompt_ids, rows[~row_test], rows[row_test], positions, token_ids, hook_name
    )


def check_labels(labels: object, n: int) -> Tensor:
    """Labels for n activation rows: [n] or [n, k], int class ids or float targets, not bool. Chapter 03: probing."""
    labels = expect_tensor(labels, "labels")
    if labels.ndim not in (1, 2) or labels.shape[0] != n:
        raise TutorialInputError(
            f"labels must have shape ({n},) or ({n}, k): one label per activation row; got {tuple(labels.shape)}."
        )
    if labels.dtype == torch.bool:
        raise TutorialInputError("labels must be int class ids or float targets, got a bool tensor; use labels.long().")
    return labels


def valid_hook_names(model) -> list[str]:
    """Every hook name `run_with_cache` reports for this model (legacy names included). Chapter 03: probing."""
    tokens = torch.zeros(1, 1, dtype=torch.long, device=model_device(expect_model(model)))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return list(cache.keys())


def check_hook(model, hook_name: str) -> str:
    """A hook name the model has whose activation is [batch, pos, ...]; else the valid names. Chapter 03: probing."""
    if not isinstance(hook_name, str) or model.get_hook_point(hook_name) is None:
        names = valid_hook_names(model)
        compact = sorted({re.sub(r"^blocks\.\d+\.", "blocks.{l}.", n) for n in names})
        legacy = [n for n in compact if "hook_" in n.split(".")[-1] and "._" not in n]
        close = difflib.get_close_matches(str(hook_name), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TutorialInputError(
            f"unknown hook name {hook_name!r}.{hint} Valid names (l = 0..{model.cfg.n_layers - 1}): "
            + ", ".join(legacy)
        )
    if hook_name.endswith(("hook_pattern", "hook_attn_scores")):
        raise TutorialInputError(
            f"{hook_name!r} is [batch, head, q, k]: probes need [batch, pos, ...] activations; "
            "use e.g. blocks.{l}.attn.hook_z or a residual hook."
        )
    return hook_name


def position_mask(positions: Positions, batch: int, seq: int, device) -> Bool[Tensor, "batch pos"]:
    """Turn "all" / an int / a [batch] index tensor / a [batch, pos] bool mask into a [batch, pos] mask.

    Chapter 03: probing.
    """
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return torch.ones(batch, seq, dtype=torch.bool, device=device)
    if isinstance(positions, str):
        raise TutorialInputError(
            f'positions must be "all", an int, a [batch] int tensor or a [batch, pos] bool mask; got {positions!r}.'
        )
    if isinstance(positions, int):
        positions = torch.full((batch,), positions, dtype=torch.long)
    positions = expect_tensor(positions, "positions").to(device)
    if positions.dtype == torch.bool:
        expect_shape(positions, (batch, seq), "positions (a bool mask)", "[batch, pos]")
        return positions
    expect_dtype(positions, "int", "positions")
    expect_shape(positions, (batch,), "positions (one index per prompt)", "[batch]")
    if positions.numel() and (positions.min() < -seq or positions.max() >= seq):
        raise TutorialInputError(
            f"positions must lie in [-{seq}, {seq - 1}] for prompts of length {seq}, "
            f"got values in [{int(positions.min())}, {int(positions.max())}]."
        )
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
    mask[torch.arange(batch, device=device), positions % seq] = True
    return mask


def labels_at(labels: Tensor, mask: Bool[Tensor, "batch pos"]) -> Tensor:
    """Labels per chosen token: [batch] labels repeat over a prompt's positions, [batch, pos] are indexed.

    Chapter 03: probing.
    """
    batch, seq = expect_dtype(expect_ndim(mask, 2, "mask", "[batch, pos]"), "bool", "mask").shape
    labels = expect_tensor(labels, "labels").to(mask.device)
    if labels.shape == (batch, seq):
        return labels[mask]
    if labels.shape == (batch,):
        return labels[:, None].expand(batch, seq)[mask]
    raise TutorialInputError(
        f"labels must have shape ({batch},) (one per prompt) or ({batch}, {seq}) (one per token), got {tuple(labels.shape)}."
    )


def rows_from_act(act: Tensor, mask: Bool[Tensor, "batch pos"]) -> Float[Tensor, "n d"]:
    """[batch, pos, ...] activation -> [n, d] rows at the masked positions (trailing dims flattened).

    Chapter 03: probing.
    """
    expect_dtype(expect_ndim(mask, 2, "mask", "[batch, pos]"), "bool", "mask")
    if expect_tensor(act, "act").ndim < 3 or act.shape[:2] != mask.shape:
        raise TutorialInputError(
            f"the hook's activation must be [batch, pos, ...] with batch, pos = {tuple(mask.shape)}, "
            f"got {tuple(act.shape)}."
        )
    return act.reshape(*act.shape[:2], -1)[mask].float()


def dataset_from_cache(act, tokens, labels, mask, test_frac, seed, hook_name) -> ProbeDataset:
    """A ProbeDataset from a cached [batch, pos, ...] activation at the masked positions. Chapter 03: probing."""
    batch, seq = mask.shape
    prompt_grid = torch.arange(batch, device=mask.device)[:, None].expand(batch, seq)
    pos_grid = torch.arange(seq, device=mask.device)[None, :].expand(batch, seq)
    return make_dataset(
        rows_from_act(act, mask),
        labels_at(labels, mask),
        prompt_grid[mask],
        test_frac,
        seed,
        token_ids=tokens.to(mask.device)[mask],
        positions=pos_grid[mask],
        hook_name=hook_name,
    )


@torch.no_grad()
def collect_activations(
    model,
    tokens: Int[Tensor, "batch pos"],
    labels: Tensor,
    hook_name: str,
    positions: Positions = "all",
    test_frac: float = 0.25,
    seed: int = 0,
) -> ProbeDataset:
    """Run the model once, keep `hook_name` at the chosen positions, and split by prompt.

    labels: [batch] (one per prompt, repeated over its chosen positions) or [batch, pos] (per token).
    positions: "all", an int (same position in every prompt, may be negative), a [batch] int tensor,
    or a [batch, pos] bool mask.

    Chapter 03: probing.
    """
    tokens = expect_tokens(tokens, "tokens", model)
    check_hook(model, hook_name)
    tokens = tokens.to(model_device(model))
    mask = position_mask(positions, tokens.shape[0], tokens.shape[1], tokens.device)
    labels_at(labels, mask)  # validate before the forward pass
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
    return dataset_from_cache(cache[hook_name], tokens, labels, mask, test_frac, seed, hook_name)


def probe_rows(act: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """[batch, pos, d] activations and [batch, pos] labels -> rows (X [n, d], y [n]) where mask is True.

    Chapter 03: probing. Exercise 03.1 (the reference).
    """
    return rows_from_act(act, mask), labels_at(labels, mask)
