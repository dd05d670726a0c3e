"""tutorial_lib.organisms.loading: every corruption of an organism's files gives a clear error naming the file
and the fix (issue 17, "Organism files"); the hub probe fails fast.

Run as a script (`python tests/test_organisms_integrity.py`) to print the sweep's figures: how many corruptions
give a clear error, a misleading one, a raw one, or load anyway.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib.organisms import loading

NAME, OTHER = "toy-lm", "ioi-3l"
SHIPPED = loading.DATA_DIR  # the package's own files, copied before each corruption
FIXES = ("git checkout", "re-download", "organisms train", "organisms seal")


def _edit_json(path: Path, fn: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text())), indent=2))


def _edit_tensors(path: Path, fn: Callable[[dict], None]) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    fn(state)
    save_file(state, str(path))


def _first_weight(state: dict) -> str:
    return next(k for k, v in state.items() if v.ndim == 2)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _config(**changes) -> Callable[[Path], None]:
    return lambda d: _edit_json(d / "card.json", lambda c: {**c, "config": {**c["config"], **changes}})


def _swap_vocab(tok: dict) -> dict:
    vocab = tok["model"]["vocab"]
    a, b = list(vocab)[5:7]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    return tok


def _to_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("x")


def _no_integrity(c: dict) -> dict:
    return {k: v for k, v in c.items() if k not in ("integrity", "sha256")}


# name -> (corrupt(organism_dir), the file the error must name)
CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "weights truncated": (
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
        "model.safetensors",
    ),  # fmt: skip
    "weights byte flipped": (lambda d: _flip(d / "model.safetensors"), "model.safetensors"),
    "weights missing": (lambda d: (d / "model.safetensors").unlink(), "model.safetensors"),
    "weights empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "weights a directory": (lambda d: _to_dir(d / "model.safetensors"), "model.safetensors"),
    "weights extra tensor": (
        lambda d: _edit_tensors(d / "model.safetensors", lambda s: s.__setitem__("extra", torch.zeros(3))),
        "model.safetensors",
    ),  # fmt: skip
    "weights missing tensor": (
        lambda d: _edit_tensors(d / "model.safetensors", lambda s: s.pop(_first_weight(s))),
        "model.safetensors",
    ),  # fmt: skip
    "weights wrong dtype": (
        lambda d: _edit_tensors(
            d / "model.safetensors", lambda s: s.__setitem__(_first_weight(s), s[_first_weight(s)].half())
        ),
        "model.safetensors",
    ),  # fmt: skip
    "weights wrong shape": (
        lambda d: _edit_tensors(
            d / "model.safetensors", lambda s: s.__setitem__(_first_weight(s), s[_first_weight(s)][:-1])
        ),
        "model.safetensors",
    ),  # fmt: skip
    "weights of another organism": (
        lambda d: shutil.copy(d.parent / OTHER / "model.safetensors", d / "model.safetensors"),
        "model.safetensors",
    ),  # fmt: skip
    "card missing": (lambda d: (d / "card.json").unlink(), "card.json"),
    "card not JSON": (lambda d: (d / "card.json").write_text("{'name': 'toy-lm',"), "card.json"),
    "card empty": (lambda d: (d / "card.json").write_bytes(b""), "card.json"),
    "card a directory": (lambda d: _to_dir(d / "card.json"), "card.json"),
    "card a JSON list": (lambda d: (d / "card.json").write_text("[]"), "card.json"),
    "card without integrity": (lambda d: _edit_json(d / "card.json", _no_integrity), "card.json"),
    "config n_heads=8, d_head=8": (_config(n_heads=8, d_head=8), "card.json"),
    "config d_vocab=200": (_config(d_vocab=200), "card.json"),
    "config d_head=32": (_config(d_head=32), "card.json"),
    "card wrong organism name": (
        lambda d: _edit_json(d / "card.json", lambda c: {**c, "name": "toy-lm-2"}),
        "card.json",
    ),
    "card of another organism": (lambda d: shutil.copy(d.parent / OTHER / "card.json", d / "card.json"), "card.json"),
    "tokenizer.json missing": (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json"),
    "tokenizer.json edited": (lambda d: _edit_json(d / "tokenizer.json", _swap_vocab), "tokenizer.json"),
    "tokenizer.json not JSON": (lambda d: (d / "tokenizer.json").write_text("not json"), "tokenizer.json"),
    "tokenizer_config.json missing": (lambda d: (d / "tokenizer_config.json").unlink(), "tokenizer_config.json"),
    "tokenizer_config.json edited": (
        lambda d: _edit_json(d / "tokenizer_config.json", lambda c: {**c, "bos_token": "<pad>"}),
        "tokenizer_config.json",
    ),
}


def _copy_organisms(root: Path) -> Path:
    for name in ("induction-2l", OTHER, NAME):
        shutil.copytree(SHIPPED / name, root / name)
    return root


def classify(error: BaseException | None, file: str) -> str:
    """'clear' (a library error naming the file and a fix), 'misleading' (a library error that does not),
    'raw' (any other exception) or 'loaded anyway' (no error)."""
    if error is None:
        return "loaded anyway"
    kinds = {c.__name__ for c in type(error).__mro__}
    if not kinds & {"OrganismError", "TutorialInputError"}:
        return "raw"
    text = str(error)
    return "clear" if file in text and any(f in text for f in FIXES) else "misleading"


def sweep(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Apply each corruption to a fresh copy of the shipped organisms and load NAME: name -> (kind, message)."""
    saved = loading.DATA_DIR
    out = {}
    try:
        for i, (label, (corrupt, file)) in enumerate(CORRUPTIONS.items()):
            loading.DATA_DIR = _copy_organisms(data_dir / str(i))
            corrupt(loading.DATA_DIR / NAME)
            try:
                organisms.load(NAME)
                error = None
            except Exception as e:  # noqa: BLE001 - the sweep records whatever comes out
                error = e
            out[label] = (classify(error, file), f"{type(error).__name__}: {error}"[:300] if error else "")
    finally:
        loading.DATA_DIR = saved
    return out


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "DATA_DIR", _copy_organisms(tmp_path))
    return tmp_path


@pytest.mark.usefixtures("data_dir")
def test_an_intact_copy_loads():
    assert not organisms.load(NAME).training


@pytest.mark.parametrize("label", list(CORRUPTIONS))
def test_every_corruption_gives_a_clear_error(data_dir, label):
    """Before issue 17's fix: 9 clear, 2 misleading, 10 raw, 5 loaded anyway (OrganismFileError did not exist)."""
    corrupt, file = CORRUPTIONS[label]
    corrupt(data_dir / NAME)
    with pytest.raises(loading.OrganismFileError) as info:
        organisms.load(NAME)
    assert classify(info.value, file) == "clear", str(info.value)
    assert isinstance(info.value, organisms.OrganismError)


def test_root_copy_is_checked_too(tmp_path):
    dst = tmp_path / NAME
    shutil.copytree(organisms.DATA_DIR / NAME, dst)
    _config(n_heads=8, d_head=8)(dst)
    with pytest.raises(loading.OrganismFileError, match=r"(?s)card\.json.*config.*n_heads"):
        organisms.load(NAME, root=dst)


def test_resealed_weights_that_do_not_fit_the_config_are_named(data_dir):
    """Weights whose record was updated by hand but whose tensors do not fit the config: no raw torch error."""
    d = data_dir / NAME
    _edit_tensors(d / "model.safetensors", lambda s: s.__setitem__("extra", torch.zeros(3)))
    _edit_json(
        d / "card.json",
        lambda c: {
            **c,
            "sha256": organisms.sha256(d / "model.safetensors"),
            "integrity": organisms.integrity(d, c["config"]),
        },
    )
    with pytest.raises(loading.OrganismFileError, match=r"model\.safetensors does not fit.*unexpected tensor extra"):
        organisms.load(NAME)


def test_shipped_cards_are_sealed():
    """Every shipped card's integrity record matches its files, and the legacy sha256 field still agrees."""
    for name in organisms.names():
        c = organisms.card(name)
        assert set(c["integrity"]) == {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "config"}
        assert c["integrity"]["model.safetensors"] == c["sha256"]
        assert loading.verify(name) == c


def test_seal_refuses_a_config_that_is_not_the_recipe(data_dir):
    from tutorial_lib.organisms import cli

    _config(d_vocab=200)(data_dir / NAME)
    with pytest.raises(loading.OrganismFileError, match="d_vocab"):
        cli.seal(NAME, data_dir / NAME)
    shutil.copy(organisms.DATA_DIR / NAME / "card.json", data_dir / NAME / "card.json")
    _edit_json(data_dir / NAME / "card.json", _no_integrity)
    cli.main(["seal", NAME])  # an old card without integrity record is sealed again
    assert organisms.card(NAME)["integrity"] == organisms.card(NAME, organisms.DATA_DIR / NAME)["integrity"]


def test_train_writes_the_integrity_record(tmp_path, monkeypatch):
    """A (two-step) re-run of a recipe writes a card that loading accepts."""
    monkeypatch.setitem(organisms.RECIPES["induction-2l"].train, "steps", 2)
    c = organisms.train("induction-2l", tmp_path)
    assert c["integrity"] == organisms.integrity(tmp_path, c["config"])
    assert organisms.verify("induction-2l", tmp_path)["integrity"] == c["integrity"]
    assert not organisms.load("induction-2l", root=tmp_path).training


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def local_hub(monkeypatch):
    """Point the hub at 127.0.0.1 (never an external address): returns a function setting the port."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    return lambda port: monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")


def test_hub_closed_port_fails_fast(local_hub):
    local_hub(_closed_port())
    t = time.time()
    with pytest.raises(organisms.OrganismError, match="(?s)gpt2.*127.0.0.1.*HF_HUB_OFFLINE.*toy-lm"):
        organisms.load("gpt2")
    assert time.time() - t < 2


def test_hub_that_accepts_but_never_answers_fails_fast(local_hub, monkeypatch):
    """Reachable by TCP but not working: before, 33 s of retries then a raw OSError."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    conns: list[socket.socket] = []
    threading.Thread(target=lambda: conns.append(server.accept()[0]), daemon=True).start()
    local_hub(server.getsockname()[1])
    monkeypatch.setattr(loading, "HUB_PROBE_TIMEOUT", 1.0)
    t = time.time()
    try:
        with pytest.raises(organisms.OrganismError, match="(?s)gpt2.*not answering"):
            organisms.load("gpt2")
    finally:
        server.close()
        for c in conns:
            c.close()
    assert time.time() - t < 4


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        results = sweep(Path(tmp))
    for label, (kind, message) in results.items():
        print(f"{kind:14} {label:32} {message}")
    counts = {k: sum(v[0] == k for v in results.values()) for k in ("clear", "misleading", "raw", "loaded anyway")}
    print(f"{len(results)} corruptions: " + ", ".join(f"{n} {k}" for k, n in counts.items()), file=sys.stderr)
