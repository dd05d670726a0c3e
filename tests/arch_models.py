"""Random Hugging Face models of the real architectures, wrapped as TransformerBridge offline (no download):
a Llama (grouped-query attention, RMSNorm, rotary embeddings, gated MLP: SmolLM2's architecture) and a GPT-2
(what `TUTORIAL_MODEL=gpt2` loads: boot_transformers + compatibility mode). Both use the organisms'
word-level tokenizer, so every task's prompts tokenise as on the organisms."""

from __future__ import annotations

import torch
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import tasks
from tutorial_lib.organisms import DATA_DIR
from tutorial_lib.tokenizer import load_tokenizer

N_HEADS, N_KV_HEADS = 6, 2  # three query heads per key/value head, as SmolLM2 (9 and 3)


def random_llama(device="cpu", seed: int = 0, n_layers: int = 3):
    """A 3-layer Llama-architecture bridge with random weights: 6 query heads sharing 2 key/value heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tasks.VOCAB), hidden_size=48, intermediate_size=96, num_hidden_layers=n_layers,
                         num_attention_heads=N_HEADS, num_key_value_heads=N_KV_HEADS, max_position_embeddings=128,
                         tie_word_embeddings=True, rms_norm_eps=1e-5)  # fmt: skip
    hf = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # non-trivial norm gains, so folding and DLA are really exercised
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    model = TransformerBridge.boot_transformers("HuggingFaceTB/SmolLM2-135M-Instruct", hf_model=hf,
                                                tokenizer=load_tokenizer(DATA_DIR / "toy-lm"), device=str(device))  # fmt: skip
    return model.eval()


def random_gpt2(device="cpu", seed: int = 0, n_layers: int = 3):
    """A 3-layer GPT-2-architecture bridge with random weights, in compatibility mode (the `gpt2` path)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layers, n_head=4, n_embd=32, vocab_size=len(tasks.VOCAB), n_positions=128)
    hf = GPT2LMHeadModel(config).eval()
    model = TransformerBridge.boot_transformers("gpt2", hf_model=hf, tokenizer=load_tokenizer(DATA_DIR / "toy-lm"),
                                                device=str(device))  # fmt: skip
    model.enable_compatibility_mode()
    return model.eval()


ARCHITECTURES = {"llama": random_llama, "gpt2": random_gpt2}


def out_proj_slice(model, layer: int, head: int) -> torch.Tensor:
    """The slice of the wrapped Hugging Face model's output projection that carries `head`'s output."""
    d_head, hf = model.cfg.d_head, model.original_model
    if hasattr(hf, "transformer"):  # GPT-2's Conv1D: weight [in, out], input rows per head
        return hf.transformer.h[layer].attn.c_proj.weight[head * d_head : (head + 1) * d_head]
    return hf.model.layers[layer].self_attn.o_proj.weight[:, head * d_head : (head + 1) * d_head]


@torch.no_grad()
def loss_with_head_output_zeroed(model, tokens: torch.Tensor, layer: int, head: int) -> float:
    """The model's loss with `head`'s slice of the output projection set to zero (restored afterwards)."""
    w = out_proj_slice(model, layer, head)
    saved = w.clone()
    try:
        w.zero_()
        return model(tokens, return_type="loss").item()
    finally:
        w.copy_(saved)
