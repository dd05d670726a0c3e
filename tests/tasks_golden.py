"""The IOI configurations whose prompts, tokens and positions must stay byte-identical, and how they are
digested. tests/data/tasks_golden.json holds the digests of the generators as they were before
tutorial_lib.tasks became a package (stored notebook outputs and the shipped organisms' recipes depend on
the exact draws); regenerate it only when the data is meant to change."""

from __future__ import annotations

import hashlib
import json

import torch

CONFIGS = [
    {"batch": 9, "seed": seed, "template": template, "order": order, "split": split, "corruption": corruption,
     "third": third}
    for seed, template, order, split, corruption, third in [
        (0, None, "mixed", "all", "abc", None),
        (1, 0, "ABBA", "train", "abc", None),
        (2, 1, "BABA", "test", "flip", None),
        (3, 2, "mixed", "test", "abc", "after"),
        (4, 3, "ABBA", "all", "flip", "before"),
        (5, 4, "BABA", "train", "abc", "before"),
        (6, None, "mixed", "train", "flip", "after"),
        (4321, 0, "mixed", "test", "abc", None),
        (8765, 3, "mixed", "test", "abc", "after"),
    ]
]  # fmt: skip


def digest(batch) -> str:
    """sha256 of every field of a dataclass batch (tensors as values and dtype)."""
    if isinstance(batch, torch.Tensor):
        fields = {"tensor": batch}
    else:
        fields = vars(batch)
    plain = {k: [str(v.dtype), v.tolist()] if isinstance(v, torch.Tensor) else v for k, v in fields.items()}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()
