"""tutorial_lib.organisms.cli: re-running a recipe reproduces its card; the command line lists."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tutorial_lib import organisms


@pytest.mark.slow
def test_induction_recipe_reproduces_card(tmp_path):
    """Re-run the cheaper recipe; the new model must show the card's circuit and similar losses."""
    new = organisms.train("induction-2l", tmp_path)
    old = organisms.card("induction-2l")
    p, q = new["properties"], old["properties"]
    assert new["config"] == old["config"]
    assert abs(p["loss_repeated_half"] - q["loss_repeated_half"]) < 0.3
    assert abs(p["loss_first_half"] - q["loss_first_half"]) < 0.3
    assert p["previous_token_head"] == q["previous_token_head"] and p["induction_heads"] == q["induction_heads"]
    assert organisms.load("induction-2l", root=tmp_path) is not None


@pytest.mark.slow
def test_ioi_recipe_reproduces_card(tmp_path):
    """Re-run the ioi-3l recipe (about 2 minutes): the same accuracy and the same S-suppression head."""
    new = organisms.train("ioi-3l", tmp_path)
    old = organisms.card("ioi-3l")
    p, q = new["properties"], old["properties"]
    assert new["config"] == old["config"]
    assert p["ioi_acc"] > 0.95 and abs(p["ioi_logit_diff"] - q["ioi_logit_diff"]) < 1.0
    for third in ["after", "before"]:
        assert p["ioi_third_name"][third]["acc"] > 0.95
    s_attention = torch.tensor(p["end_attention_to_s"][1])
    assert (
        int(s_attention.argmax()) == int(torch.tensor(q["end_attention_to_s"][1]).argmax()) and s_attention.max() > 0.8
    )


def test_command_line_lists_the_organisms():
    out = subprocess.run([sys.executable, "-m", "tutorial_lib.organisms", "list"], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == organisms.names()
