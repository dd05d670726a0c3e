"""The shared input checks: accept what is asked for, else raise TutorialInputError saying what came."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import validation as V
from tutorial_lib.validation import TutorialInputError


def test_tutorial_input_error_is_a_value_error():
    assert issubclass(TutorialInputError, ValueError)


def test_expect_tensor_ndim_and_shape():
    x = torch.zeros(2, 3)
    assert V.expect_tensor(x, "x") is x
    assert V.expect_ndim(x, 2, "x", "[batch, pos]") is x
    assert V.expect_shape(x, (2, None), "x") is x
    with pytest.raises(TutorialInputError, match="x must be a torch.Tensor, got list"):
        V.expect_tensor([1, 2], "x")
    with pytest.raises(TutorialInputError, match=r"x must have 3 dimensions \[a, b, c\], got shape \(2, 3\)"):
        V.expect_ndim(x, 3, "x", "[a, b, c]")
    with pytest.raises(TutorialInputError, match=r"x must have shape \(2, 4\), got \(2, 3\)"):
        V.expect_shape(x, (2, 4), "x")
    with pytest.raises(TutorialInputError, match=r"shape \('\*', 4\)"):
        V.expect_shape(x, (None, 4), "x")


def test_expect_dtype():
    assert V.expect_dtype(torch.zeros(2), "float", "x").dtype == torch.float32
    assert V.expect_dtype(torch.zeros(2, dtype=torch.long), "int", "t").dtype == torch.long
    assert V.expect_dtype(torch.zeros(2, dtype=torch.bool), "bool", "m").dtype == torch.bool
    with pytest.raises(TutorialInputError, match="t must be a int tensor, got dtype torch.float32"):
        V.expect_dtype(torch.zeros(2), "int", "t")
    with pytest.raises(TutorialInputError, match="int tensor"):
        V.expect_dtype(torch.zeros(2, dtype=torch.bool), "int", "t")


def test_expect_choice_and_range():
    assert V.expect_choice("relu", ("relu", "linear"), "output") == "relu"
    with pytest.raises(TutorialInputError, match="output must be one of 'relu', 'linear'; got 'tanh'"):
        V.expect_choice("tanh", ("relu", "linear"), "output")
    assert V.expect_range(0.5, "p", 0, 1) == 0.5
    assert V.expect_range(7.0, "lr", 0.0) == 7.0
    with pytest.raises(TutorialInputError, match=r"p must lie in \[0, 1\], got 1.5"):
        V.expect_range(1.5, "p", 0, 1)
    with pytest.raises(TutorialInputError, match=r"x must lie in \[-inf, 2\]"):
        V.expect_range(3, "x", high=2)


def test_expect_int_at_least():
    assert V.expect_int_at_least(3, "steps") == 3
    assert V.expect_int_at_least(0, "pairs", 0) == 0
    with pytest.raises(TutorialInputError, match="steps must be a positive int, got 0"):
        V.expect_int_at_least(0, "steps")
    with pytest.raises(TutorialInputError, match="pairs must be a non-negative int, got -1"):
        V.expect_int_at_least(-1, "pairs", 0)
    with pytest.raises(TutorialInputError, match="n must be an int >= 2, got 1.5"):
        V.expect_int_at_least(1.5, "n", 2)
