"""Chapter 03's control tasks (Hewitt and Liang 2019): does a probe read the property, or the token?"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_shape
from .datasets import ProbeDataset, check_labels
from .probes import ProbeResult, check_dataset, run_probe

__all__ = ["ControlResult", "control_labels", "control_task"]


def control_labels(token_ids: Int[Tensor, " n"], labels: Tensor, seed: int = 0) -> Tensor:
    """Give every token type one fixed random label, drawn from the empirical label distribution.

    A probe that can read token identity scores well on these labels; one that reads the property
    (and not the token) does not.

    Chapter 03: probing. Exercise 03.3 (the reference).
    """
    token_ids = expect_ndim(token_ids, 1, "token_ids", "[n]")
    expect_dtype(token_ids, "int", "token_ids")
    labels = check_labels(labels, token_ids.shape[0])
    types, inverse = torch.unique(token_ids, return_inverse=True)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, labels.shape[0], (len(types),), generator=g).to(labels.device)
    return labels[pick][inverse.to(labels.device)]


@dataclass
class ControlResult:
    """Real-task and control-task test scores; selectivity = real - control.

    control_chance: the majority-class rate of the control labels on the test split (what a probe
    that reads nothing scores; NaN for regression).

    Chapter 03: probing.
    """

    real: float
    control: float
    control_chance: float
    real_result: ProbeResult = field(repr=False)
    control_result: ProbeResult = field(repr=False)

    @property
    def selectivity(self) -> float:
        return self.real - self.control


def control_task(
    ds: ProbeDataset, probe: str = "logistic", seed: int = 0, control_ids: Int[Tensor, " n"] | None = None, **kwargs
) -> ControlResult:
    """Train the same probe on the real labels and on control labels keyed by token identity. Chapter 03: probing."""
    ds = check_dataset(ds)
    ids = ds.token_ids if control_ids is None else control_ids
    if ids is None:
        raise TutorialInputError(
            "control_task needs token identities: pass control_ids=[n] or build the dataset "
            "with collect_activations / make_dataset(token_ids=...)."
        )
    expect_shape(ids, (len(ds),), "control_ids", "[n]")
    real = run_probe(ds, probe, **kwargs)
    ctrl_labels = control_labels(ids.to(ds.labels.device), ds.labels, seed)
    ctrl = run_probe(ds.with_labels(ctrl_labels), probe, **kwargs)
    test = ctrl_labels[ds.test_idx]
    chance = float("nan") if probe == "ridge" else test.unique(return_counts=True)[1].max().item() / len(test)
    return ControlResult(real.test_score, ctrl.test_score, chance, real, ctrl)
