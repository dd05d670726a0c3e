"""tutorial_lib.sae.splitting: feature_splits finds parents with two close children and measures how the
children divide the parent's contexts, against a random division."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


def planted():
    """A small SAE whose latent 0 is the sum of big latents 0 and 1; big 0 fires on token 0, big 1 on token 1."""
    small, big = S.TopKSAE(4, 2, k=1, seed=0), S.TopKSAE(4, 3, k=1, seed=0)
    with torch.no_grad():
        e = torch.eye(4)
        big.W_dec.copy_(torch.stack([e[0] + 0.3 * e[1], e[0] - 0.3 * e[1], e[3]]))
        big.W_enc.copy_(big.W_dec.T)
        big.b_enc.zero_()
        big.b_dec.zero_()
        small.W_dec.copy_(torch.stack([e[0], e[2]]))
        small.W_enc.copy_(small.W_dec.T)
        small.b_enc.zero_()
        small.b_dec.zero_()
    acts = torch.cat([e[0] + 0.3 * e[1] for _ in range(50)] + [e[0] - 0.3 * e[1] for _ in range(50)]).reshape(100, 4)
    tokens = torch.cat([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    return small, big, acts, tokens


def test_a_planted_split_divides_contexts_by_token():
    small, big, acts, tokens = planted()
    (split,) = S.feature_splits(small, big, acts, tokens, 2, threshold=0.6)
    assert split.parent == 0 and sorted(split.children) == [0, 1]
    assert split.jaccard == 0.0 and split.tv == pytest.approx(1.0)
    assert split.tv_random < 0.5


def test_bad_input_is_refused():
    small, big, acts, tokens = planted()
    with pytest.raises(TutorialInputError, match="tokens"):
        S.feature_splits(small, big, acts, tokens[:10], 2)
