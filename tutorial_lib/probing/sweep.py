"""Chapter 03's layer sweep: one probe per layer (and position) from a single cached forward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..progress import progress
from ..validation import TutorialInputError, expect_choice, expect_tokens, model_device
from .controls import control_task
from .datasets import Positions, ProbeDataset, check_hook, dataset_from_cache, labels_at, position_mask
from .probes import PROBES, run_probe

__all__ = ["SweepResult", "layer_sweep"]


@dataclass
class SweepResult:
    """Test score per layer ([L]) or per layer and position ([L, pos], NaN where no data). Chapter 03: probing."""

    layers: list[int]
    hook_names: list[str]
    scores: Tensor
    control_scores: Tensor | None = None

    @property
    def selectivity(self) -> Tensor | None:
        return None if self.control_scores is None else self.scores - self.control_scores

    @property
    def best_layer(self) -> int:
        s = self.scores if self.scores.ndim == 1 else self.scores.nan_to_num(-float("inf")).amax(-1)
        return self.layers[int(s.argmax())]


def _hook_for(hook: str, layer: int) -> str:
    """The hook name of `hook` at `layer`: a template with {layer}, or a get_act_name short name. Chapter 03: probing."""
    if "{" in hook:
        return hook.format(layer=layer, l=layer)
    return get_act_name(hook, layer)


@torch.no_grad()
def layer_sweep(
    model,
    tokens: Int[Tensor, "batch pos"],
    labels: Tensor,
    hook: str = "resid_post",
    layers: Sequence[int] | None = None,
    positions: Positions = "all",
    probe: str = "logistic",
    per_position: bool = False,
    control: bool = False,
    test_frac: float = 0.25,
    seed: int = 0,
    **probe_kwargs,
) -> SweepResult:
    """Probe every layer from one `run_with_cache` (names_filter keeps only the hooks swept).

    hook: a TransformerLens short name for get_act_name ("resid_post", "resid_pre", "mlp_out", "z")
    or a template like "blocks.{layer}.hook_resid_mid". per_position trains one probe per position.
    control adds Hewitt-Liang control scores (token-identity labels) per layer.

    Chapter 03: probing.
    """
    tokens = expect_tokens(tokens, "tokens", model).to(model_device(model))
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    if not layers or any(not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers for layer in layers):
        raise TutorialInputError(f"layers must be ints in [0, {model.cfg.n_layers - 1}], got {layers!r}.")
    expect_choice(probe, PROBES, "probe")
    names = [check_hook(model, _hook_for(hook, layer)) for layer in layers]
    mask = position_mask(positions, tokens.shape[0], tokens.shape[1], tokens.device)
    labels_at(labels, mask)  # validate before the forward pass
    _, cache = model.run_with_cache(tokens, names_filter=names)

    def score(ds: ProbeDataset) -> tuple[float, float]:
        if not control:
            return run_probe(ds, probe, **probe_kwargs).test_score, float("nan")
        res = control_task(ds, probe, seed, **probe_kwargs)
        return res.real, res.control

    seq = tokens.shape[1]
    shape = (len(layers), seq) if per_position else (len(layers),)
    scores = torch.full(shape, float("nan"))
    ctrl = torch.full(shape, float("nan"))
    for i, name in enumerate(progress(names, desc="layer sweep")):
        if not per_position:
            scores[i], ctrl[i] = score(dataset_from_cache(cache[name], tokens, labels, mask, test_frac, seed, name))
            continue
        for p in range(seq):
            m = mask.clone()
            m[:, torch.arange(seq, device=m.device) != p] = False
            if m.sum() < 4:
                continue
            ds = dataset_from_cache(cache[name], tokens, labels, m, test_frac, seed, name)
            if probe != "ridge" and len(torch.unique(ds.y_train)) < 2:
                continue  # one class only at this position: nothing to probe
            scores[i, p], ctrl[i, p] = score(ds)
    return SweepResult(layers, names, scores, ctrl if control else None)
