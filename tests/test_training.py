"""The training loop: it learns, it is reproducible, masks work, and the bridge sees the trained weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tutorial_lib import tasks
from tutorial_lib.training import lm_loss, train_lm


def _tiny_bridge(device, seed=0):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    torch.manual_seed(seed)
    cfg = TransformerBridgeConfig(n_layers=1, d_model=32, n_heads=2, d_head=16, d_vocab=12, n_ctx=16,
                                  attn_only=True, normalization_type="LN", seed=seed, device=str(device))  # fmt: skip
    return TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue] - attached at import


def test_lm_loss_matches_cross_entropy():
    logits = torch.randn(3, 7, 11)
    tokens = torch.randint(0, 11, (3, 7))
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(lm_loss(logits, tokens), ref)
    mask = torch.rand(3, 7) > 0.5
    mask[0, 0] = True
    keep = mask[:, :-1].reshape(-1)
    ref_masked = F.cross_entropy(logits[:, :-1].reshape(-1, 11)[keep], tokens[:, 1:].reshape(-1)[keep])
    torch.testing.assert_close(lm_loss(logits, tokens, mask), ref_masked)
    torch.testing.assert_close(lm_loss(logits, tokens, mask[:, :-1]), ref_masked)


def test_train_lm_learns_reproducibly_and_bridge_matches(device):
    def run():
        model = _tiny_bridge(device)
        gen = torch.Generator().manual_seed(0)
        calls = []
        losses = train_lm(model, lambda _step: tasks.repeated_tokens(16, 7, 12, seed=gen), steps=60, lr=3e-3,
                          callback=lambda step, _model, _loss: calls.append(step), every=20)  # fmt: skip
        return model, losses, calls

    model, losses, calls = run()
    _, losses2, _ = run()
    assert len(losses) == 60 and calls == [0, 20, 40, 59]
    assert losses == losses2 or device.type != "cpu"
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3  # it learned something
    assert not model.training
    # The loop steps the bridge's inner module: the bridge must compute with the trained weights.
    x = tasks.repeated_tokens(4, 7, 12, seed=5).to(device)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.original_model(x))
        assert lm_loss(model(x), x) < losses[0]


def test_loss_mask_restricts_training():
    """With a mask that keeps only the last prediction, earlier positions get no gradient signal."""
    model = _tiny_bridge("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = tasks.repeated_tokens(8, 7, 12, seed=1)
    mask = torch.zeros(8, 15, dtype=torch.bool)  # nothing counts: the loss is 0 and AdamW only decays weights
    train_lm(model, lambda _step: x, steps=3, weight_decay=0.0, loss_mask_fn=lambda _tokens: mask)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
