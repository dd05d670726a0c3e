"""Tests for tutorial_lib.attention.masks: which queries are repeats."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


def test_repeat_masks_classic_and_per_row():
    first, rep = A.repeat_masks(9, 4, start=1, batch=2)  # [BOS, x1..x4, x1..x4]
    assert rep[0].nonzero().flatten().tolist() == [5, 6, 7]
    assert first[0].nonzero().flatten().tolist() == [1, 2, 3]
    first, rep = A.repeat_masks(12, torch.tensor([2, 3]), start=torch.tensor([1, 4]))
    assert rep[0].nonzero().flatten().tolist() == [3]
    assert rep[1].nonzero().flatten().tolist() == [7, 8]
    assert first[1].nonzero().flatten().tolist() == [4, 5]
    with pytest.raises(TutorialInputError):
        A.repeat_masks(8, 4, start=1)  # the second copy runs past the end


def test_masks_agree_with_tasks():
    tasks = pytest.importorskip("tutorial_lib.tasks")
    seg = tasks.repeated_segments(16, 40, 30, (3, 9), (0, 10), seed=3)
    first, rep = A.repeat_masks(40, seg.period, seg.start)
    assert torch.equal(rep, seg.repeated) and torch.equal(first, seg.first)
    # and the tokens really repeat where the masks say so
    b, q = rep.nonzero(as_tuple=True)
    assert torch.equal(seg.tokens[b, q + 1], seg.tokens[b, q + 1 - seg.period[b]])
    assert torch.equal(seg.tokens[b, q], seg.tokens[b, q - seg.period[b]])
