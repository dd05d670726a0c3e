"""Input checks shared by every public function: fail early, say what was expected."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch


class TutorialInputError(ValueError):
    """Raised when a public function gets input it cannot use; the message says what was expected."""


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expect_sha256(path: str | Path, digest: str, rebuild: str) -> Path:
    """Check that a shipped artefact file exists and matches its card's sha256; otherwise say how to
    restore it or `rebuild` it (the command that retrains it)."""
    path = Path(path)
    if not path.is_file() or file_sha256(path) != digest:
        raise TutorialInputError(
            f"{path} is missing or does not match its card's sha256: restore it (git checkout) or rebuild it "
            f"with {rebuild}"
        )
    return path


def expect_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TutorialInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    return x


def expect_ndim(x: object, ndim: int, name: str, dims: str = "") -> torch.Tensor:
    """Check `x` is a tensor with `ndim` dimensions; `dims` names them, e.g. "[batch, pos]"."""
    x = expect_tensor(x, name)
    if x.ndim != ndim:
        shape_note = f" {dims}" if dims else ""
        raise TutorialInputError(f"{name} must have {ndim} dimensions{shape_note}, got shape {tuple(x.shape)}.")
    return x


def expect_shape(x: object, shape: Sequence[int | None], name: str, dims: str = "") -> torch.Tensor:
    """Check `x` has `shape`; None in `shape` matches any size."""
    x = expect_ndim(x, len(shape), name, dims)
    if any(want is not None and want != got for want, got in zip(shape, x.shape)):
        want = tuple("*" if s is None else s for s in shape)
        shape_note = f" {dims}" if dims else ""
        raise TutorialInputError(f"{name} must have shape {want}{shape_note}, got {tuple(x.shape)}.")
    return x


def expect_dtype(x: object, kind: str, name: str) -> torch.Tensor:
    """kind is "float", "int" or "bool"."""
    x = expect_tensor(x, name)
    ok = {
        "float": x.is_floating_point(),
        "int": not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool,
        "bool": x.dtype == torch.bool,
    }[kind]
    if not ok:
        raise TutorialInputError(f"{name} must be a {kind} tensor, got dtype {x.dtype}.")
    return x


def expect_choice(value: object, choices: Iterable[object], name: str) -> object:
    choices = list(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise TutorialInputError(f"{name} must be one of {listed}; got {value!r}.")
    return value


def expect_range(value: float, name: str, low: float | None = None, high: float | None = None) -> float:
    """Check low <= value <= high (either bound may be None)."""
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise TutorialInputError(f"{name} must lie in [{lo}, {hi}], got {value!r}.")
    return value


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter: where to put the tokens a kernel feeds it."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise TutorialInputError("the model has no parameters, so it has no device to put inputs on.") from None


def expect_int_at_least(value: object, name: str, low: int = 1) -> int:
    """Check `value` is an int >= low (low=1: "a positive int", low=0: "a non-negative int")."""
    if not isinstance(value, int) or value < low:
        kind = {1: "a positive int", 0: "a non-negative int"}.get(low, f"an int >= {low}")
        raise TutorialInputError(f"{name} must be {kind}, got {value!r}.")
    return value


def expect_tokens(tokens: object, name: str = "tokens", model=None) -> torch.Tensor:
    """Check `tokens` is an int tensor [batch, pos]; with `model`, that it fits the model's context
    (at most cfg.n_ctx positions) and vocabulary (ids in [0, cfg.d_vocab))."""
    tokens = expect_ndim(tokens, 2, name, "[batch, pos]")
    expect_dtype(tokens, "int", name)
    if model is None:
        return tokens
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx is not None and tokens.shape[1] > n_ctx:
        raise TutorialInputError(f"{name} has {tokens.shape[1]} positions; the model takes at most {n_ctx}.")
    d_vocab = model.cfg.d_vocab
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= d_vocab):
        raise TutorialInputError(
            f"{name} must lie in [0, {d_vocab - 1}] (d_vocab), got values in [{int(tokens.min())}, {int(tokens.max())}]."
        )
    return tokens


def expect_scalar(value: object, what: str = "metric") -> torch.Tensor:
    """Check that what `what` returned is one number (a Python number or a one-element tensor); return it
    as a detached 0-dim tensor, its dtype kept."""
    value = torch.as_tensor(value)
    if value.numel() != 1:
        raise TutorialInputError(
            f"{what} must return a scalar (e.g. the mean over the batch), got a tensor of shape {tuple(value.shape)}."
        )
    return value.detach().reshape(())


def expect_heads(heads: object, model, name: str = "heads") -> list[tuple[int, int]]:
    """Check `heads` is a non-empty list of (layer, head) pairs inside `model`; return them as int pairs."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    try:
        out = [tuple(int(x) for x in pair) for pair in heads]  # pyright: ignore[reportGeneralTypeIssues]
    except (TypeError, ValueError):
        out = None
    if not out or any(len(p) != 2 or not (0 <= p[0] < n_layers and 0 <= p[1] < n_heads) for p in out):
        raise TutorialInputError(
            f"{name} must be a non-empty list of (layer, head) with 0 <= layer < {n_layers} and "
            f"0 <= head < {n_heads}; got {heads if out is None else out}."
        )
    return [(p[0], p[1]) for p in out]


def expect_finite(x: object, name: str) -> torch.Tensor:
    """Check a tensor (or number) holds no NaN or inf, and is not on the meta device (no values to compute on)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(expect_number(x, name))
    if t.device.type == "meta":
        raise TutorialInputError(f"{name} is on the meta device (it has no values); move it to cpu or cuda first.")
    if (t.is_floating_point() or t.is_complex()) and t.numel() and not bool(torch.isfinite(t).all()):
        raise TutorialInputError(f"{name} must be finite, but it holds NaN or inf.")
    return t


def expect_number(value: object, name: str, low: float | None = None, high: float | None = None) -> float:
    """Check `value` is a finite real number (a Python number or a one-element tensor) in [low, high]."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.device.type != "meta":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TutorialInputError(f"{name} must be a finite number, got {value!r}.")
    return expect_range(value, name, low, high)


def expect_index(value: object, name: str, size: int) -> int:
    """Check `value` is an int in [0, size): a layer, head or position (negative indices are not taken)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise TutorialInputError(f"{name} must be an int in [0, {size - 1}], got {value!r}.")
    return value


def expect_ids(x: object, name: str, size: int, ndim: int | None = None) -> torch.Tensor:
    """Check `x` is an int tensor (of `ndim` dimensions, if given) with every entry in [0, size):
    token ids (size d_vocab), positions, class labels."""
    x = expect_tensor(x, name) if ndim is None else expect_ndim(x, ndim, name)
    expect_dtype(x, "int", name)
    if x.device.type == "meta":
        raise TutorialInputError(f"{name} is on the meta device (it has no values); move it to cpu or cuda first.")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= size):
        raise TutorialInputError(f"{name} must lie in [0, {size - 1}], got values in [{int(x.min())}, {int(x.max())}].")
    return x


def expect_same_shape(a: object, b: object, names: str) -> torch.Tensor:
    """Check two tensors have the same shape (no broadcasting); `names` reads e.g. "pred and y"."""
    a, b = expect_tensor(a, names), expect_tensor(b, names)
    if a.shape != b.shape:
        raise TutorialInputError(f"{names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    return a


def expect_model(model: Any, name: str = "model") -> Any:
    """Check `model` looks like a TransformerLens model (it has a cfg with n_layers and n_heads)."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "n_layers") or not hasattr(cfg, "n_heads"):
        raise TutorialInputError(f"{name} must be a TransformerLens model (with .cfg), got {type(model).__name__}.")
    return model


def expect_last_dim(x: object, size: int, name: str, what: str = "d_model") -> torch.Tensor:
    """Check `x` is a tensor whose last dimension is `size` (named `what`, e.g. "d_model")."""
    x = expect_tensor(x, name)
    if x.ndim == 0 or x.shape[-1] != size:
        raise TutorialInputError(f"{name} must end in {what} = {size}, got shape {tuple(x.shape)}.")
    return x


def expect_values(v: object, name: str, dtype: torch.dtype = torch.float32, positive: bool = False) -> torch.Tensor:
    """`v` (numbers or a tensor) as a tensor of `dtype` with finite (and, if asked, positive) entries."""
    t = expect_finite(torch.as_tensor(v, dtype=dtype), name)
    if positive and not bool((t > 0).all()):
        raise TutorialInputError(f"{name} must be positive, got {t.tolist()}.")
    return t
