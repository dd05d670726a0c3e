"""lens/logit.py against TransformerLens 4.3's own logit lens on small bridges (LayerNorm, RMSNorm,
grouped-query attention), and its input errors."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.tools.analysis as tl_analysis
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import lens
from tutorial_lib.validation import TutorialInputError


def _bridge(norm: str, n_kv_heads: int | None = None):
    cfg = TransformerBridgeConfig(
        n_layers=3, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=29, n_ctx=16,
        normalization_type=norm, act_fn="gelu", seed=0, device="cpu", n_key_value_heads=n_kv_heads,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]
    model.eval()
    return model


@pytest.mark.parametrize(("norm", "kv"), [("LN", None), ("RMS", None), ("RMS", 2)])
def test_logit_lens_equals_transformer_lens(norm, kv):
    try:
        model = _bridge(norm, kv)
    except (TypeError, ValueError) as err:  # a config this TransformerLens cannot boot natively
        pytest.skip(f"bridge config not supported: {err}")
    tokens = torch.randint(0, 29, (3, 10), generator=torch.Generator().manual_seed(1))
    logits, cache = model.run_with_cache(tokens)
    ours = lens.logit_lens(model, cache)
    theirs = tl_analysis.logit_lens(model, cache=cache, positions=None).values
    assert ours.shape == (4, 3, 10, 29)
    torch.testing.assert_close(ours, theirs.view_as(ours), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours[-1], logits, atol=1e-4, rtol=1e-4)
    # the residual stack is TransformerLens's accumulated stack
    torch.testing.assert_close(lens.residual_stack(model, cache), cache.accumulated_resid())


def test_lens_kl_is_zero_on_the_final_entry_and_positive_before():
    model = _bridge("LN")
    tokens = torch.randint(0, 29, (2, 8), generator=torch.Generator().manual_seed(2))
    logits, cache = model.run_with_cache(tokens)
    kl = lens.lens_kl(lens.logit_lens(model, cache), logits)
    assert kl[-1].item() == pytest.approx(0.0, abs=1e-5)
    assert (kl[:-1] > 0).all()
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 3] = True
    one = lens.lens_kl(lens.logit_lens(model, cache), logits, mask)
    direct = lens.lens_kl(lens.logit_lens(model, cache)[:, :1, 3:4], logits[:1, 3:4])
    torch.testing.assert_close(one, direct)


def test_bad_inputs_name_what_was_expected():
    model = _bridge("LN")
    logits, cache = model.run_with_cache(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="d_model"):
        lens.read_out(model, torch.zeros(3, 5))
    with pytest.raises(TutorialInputError, match="lens_logits must be"):
        lens.lens_kl(torch.zeros(2, 1, 3, 29), logits)
    with pytest.raises(TutorialInputError, match="selects no position"):
        lens.lens_kl(lens.logit_lens(model, cache), logits, torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(TutorialInputError, match="hook_resid_pre"):
        lens.residual_stack(model, {})
