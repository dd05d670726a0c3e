"""The SAELens on-disk format (6.x): `save_sae` writes `cfg.json` + `sae_weights.safetensors`,
`load_sae` reads ours or SAELens's, folding SAELens's conventions (b_dec subtracted from the input,
activations rescaled by decoder norms) into the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..validation import TutorialInputError, expect_choice
from .architectures import ARCHITECTURES, CLASSES, BatchTopKSAE, JumpReLUSAE
from .base import SAE

__all__ = ["CFG_FILE", "WEIGHTS_FILE", "load_sae", "save_sae"]

WEIGHTS_FILE = "sae_weights.safetensors"
CFG_FILE = "cfg.json"
_SAELENS_VERSION = "6.0.0"  # the format version we write (SAELens >= 6 reads it as is)


def _saelens_cfg(sae: SAE, arch: str, hook: str | None, model_name: str | None) -> dict:
    """The cfg.json SAELens 6.x writes for `sae` saved as architecture `arch`.

    Chapter 02: sparse autoencoders.
    """
    return {
        "architecture": {"relu": "standard"}.get(arch, arch),
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if hook and hook.endswith("hook_z") else "none",
        **sae.extra_cfg(),
        "metadata": {
            "sae_lens_version": _SAELENS_VERSION,
            "sae_lens_training_version": _SAELENS_VERSION,
            "hook_name": hook,
            "model_name": model_name,
            "training_architecture": sae.architecture,
            "trained_with": "tutorial_lib",
        },
    }


def save_sae(sae: SAE, path: str | Path, *, hook_name: str | None = None, model_name: str | None = None) -> Path:
    """Write `sae` as SAELens 6.x does: `cfg.json` + `sae_weights.safetensors` in directory `path`.

    Chapter 02: sparse autoencoders.

    Keys W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, plus `threshold` for JumpReLU.
    BatchTopK is saved as SAELens does, as a JumpReLU whose threshold is the learned batch threshold.
    `SAE.load_from_disk(path)` in SAELens and `load_sae(path)` here both read it.
    """
    from safetensors.torch import save_file

    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().cpu().contiguous() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    arch = sae.architecture
    if isinstance(sae, JumpReLUSAE):
        tensors["threshold"] = sae.threshold.detach().cpu().contiguous()
    elif isinstance(sae, BatchTopKSAE):
        tensors["threshold"] = torch.full((sae.d_sae,), float(sae.threshold)).to(sae.W_enc.dtype)
        arch = "jumprelu"
    cfg = _saelens_cfg(sae, arch, hook_name or sae.hook_name, model_name)
    save_file(tensors, str(path / WEIGHTS_FILE))
    (path / CFG_FILE).write_text(json.dumps(cfg, indent=2))
    return path


def load_sae(path: str | Path, *, device=None) -> SAE:
    """Read an SAE in SAELens 6.x format (ours or SAELens's): standard, topk, jumprelu, batchtopk.

    Chapter 02: sparse autoencoders.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CFG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise TutorialInputError(f"{path} must hold {CFG_FILE} and {WEIGHTS_FILE} (SAELens format).")
    cfg = json.loads((path / CFG_FILE).read_text())
    w = load_file(str(path / WEIGHTS_FILE))
    arch = str({"standard": "relu"}.get(cfg["architecture"], cfg["architecture"]))
    expect_choice(arch, ARCHITECTURES, "the cfg.json architecture")
    if cfg.get("normalize_activations", "none") != "none":
        raise TutorialInputError(
            f"normalize_activations={cfg['normalize_activations']!r} is not supported; "
            "fold the normalisation into the weights in SAELens first."
        )
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    kwargs: dict[str, Any] = {"k": int(cfg["k"])} if arch in ("topk", "batchtopk") else {}
    sae = CLASSES[arch](d_in, d_sae, **kwargs)
    W_enc, b_enc, W_dec, b_dec = w["W_enc"].float(), w["b_enc"].float(), w["W_dec"].float(), w["b_dec"].float()
    if cfg.get("rescale_acts_by_decoder_norm", False):  # fold: pre * ||W_dec|| and z / ||W_dec||
        norms = W_dec.norm(dim=1)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    if cfg.get("apply_b_dec_to_input", True):  # (x - b_dec) @ W_enc + b_enc
        b_enc = b_enc - b_dec @ W_enc
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_dec.copy_(b_dec)
        if isinstance(sae, JumpReLUSAE):
            sae.log_threshold.copy_(w["threshold"].float().clamp_min(1e-12).log())
        if isinstance(sae, BatchTopKSAE) and "threshold" in w:
            sae.threshold.copy_(w["threshold"].float().reshape(-1)[0])
    sae.hook_name = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    sae.eval()
    return sae.to(device) if device is not None else sae
