"""tutorial_lib.sae.io: the SAELens format, round trips, SAELens's conventions, SAELens itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from sae_helpers import randomize_biases

from tutorial_lib import sae as S

ROOT = Path(__file__).resolve().parents[1]
SAELENS_PY = ROOT / ".venv-saelens" / "bin" / "python"


@pytest.mark.parametrize("arch,kwargs", [("relu", {}), ("topk", {"k": 3}), ("batchtopk", {"k": 3}), ("jumprelu", {})])
def test_save_load_roundtrip(tmp_path, device, arch, kwargs):
    gen = torch.Generator().manual_seed(6)
    m = S.make_sae(arch, 8, 32, device=device, **kwargs)
    randomize_biases(m, gen)
    if isinstance(m, S.BatchTopKSAE):
        m.threshold.fill_(0.2)
    m.eval()
    S.save_sae(m, tmp_path / "sae", hook_name="blocks.0.hook_resid_post")
    cfg = (tmp_path / "sae" / "cfg.json").read_text()
    assert '"d_sae": 32' in cfg and '"hook_name": "blocks.0.hook_resid_post"' in cfg
    back = S.load_sae(tmp_path / "sae", device=device)
    x = torch.randn(50, 8, generator=gen).to(device)
    assert torch.allclose(back(x), m(x), atol=1e-6)
    assert back.hook_name == "blocks.0.hook_resid_post"


def test_load_folds_saelens_conventions(tmp_path):
    """A SAELens-trained TopK file (b_dec subtracted from the input, acts rescaled by decoder norms)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(8)
    W_enc, b_enc = torch.randn(6, 20, generator=gen), torch.randn(20, generator=gen)
    W_dec, b_dec = torch.randn(20, 6, generator=gen), torch.randn(6, generator=gen)
    (tmp_path / "s").mkdir()
    save_file(
        {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec},
        str(tmp_path / "s" / "sae_weights.safetensors"),
    )
    (tmp_path / "s" / "cfg.json").write_text(
        '{"architecture": "topk", "d_in": 6, "d_sae": 20, "k": 4, '
        '"apply_b_dec_to_input": true, "rescale_acts_by_decoder_norm": true}'
    )
    x = torch.randn(30, 6, generator=gen)
    norms = W_dec.norm(dim=1)
    pre = ((x - b_dec) @ W_enc + b_enc) * norms  # SAELens TopKTrainingSAE.encode
    vals, idx = pre.topk(4)
    z = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    want = (z / norms) @ W_dec + b_dec
    got = S.load_sae(tmp_path / "s")(x)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not SAELENS_PY.exists(), reason="SAELens venv .venv-saelens absent")
def test_saelens_reads_our_format(tmp_path):
    """SAELens's SAE.load_from_disk reads what save_sae writes and computes the same codes."""
    from safetensors.torch import load_file, save_file

    gen = torch.Generator().manual_seed(9)
    x = torch.randn(64, 16, generator=gen)
    save_file({"acts": x}, str(tmp_path / "x.safetensors"))
    saes = {}
    for arch, kwargs in [("topk", {"k": 4}), ("jumprelu", {}), ("relu", {}), ("batchtopk", {"k": 4})]:
        m = S.make_sae(arch, 16, 64, **kwargs)
        randomize_biases(m, gen)
        if isinstance(m, S.BatchTopKSAE):
            m.threshold.fill_(0.3)
        m.eval()
        S.save_sae(m, tmp_path / arch)
        saes[arch] = m
    proc = subprocess.run(
        [
            str(SAELENS_PY),
            str(ROOT / "benchmarks" / "_saelens_worker.py"),
            "load",
            str(tmp_path / "x.safetensors"),
            str(tmp_path / "out"),
            *(str(tmp_path / a) for a in saes),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for arch, m in saes.items():
        got = load_file(str(tmp_path / "out" / f"{arch}.safetensors"))
        with torch.no_grad():
            assert torch.allclose(got["x_hat"], m(x), atol=1e-5), arch
            assert torch.allclose(got["z"], m.encode(x), atol=1e-5), arch
