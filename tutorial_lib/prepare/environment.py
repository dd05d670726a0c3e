"""This Python, its packages, the heavy imports and the machine's memory."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import sys
import time

from .checklist import IMPORTS, INSTALL, Check, _satisfies


def check_python(spec: str) -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = _satisfies(version, spec)
    if ok is False:
        return [
            Check(
                "Python",
                "FAIL",
                f"{version}, the curriculum needs {spec}",
                f"install Python {spec.lstrip('>=')} or newer and create the environment again",
            )
        ]
    return [Check("Python", "OK", f"{version} ({spec}) at {sys.executable}")]


def check_packages(reqs: list[str]) -> list[Check]:
    out = []
    for req in reqs:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*([^;]*)", req)
        if not match:
            continue
        name, spec = match[1], match[3].strip()
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(Check(name, "FAIL", "not installed", INSTALL))
            continue
        ok = _satisfies(version, spec) if spec else True
        if ok is False:
            out.append(
                Check(
                    name,
                    "FAIL",
                    f"{version} installed, {spec} needed",
                    f"{INSTALL}; for torch keep the build your machine needs (see the Makefile's TORCH_SPEC)",
                )
            )
        else:
            out.append(Check(name, "OK", f"{version}" + (f" ({spec})" if spec else "")))
    return out


def check_imports(modules=IMPORTS) -> list[Check]:
    out = []
    for module in modules:
        started = time.monotonic()
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - a broken install raises anything
            out.append(Check(f"import {module}", "FAIL", f"{type(err).__name__}: {str(err)[:200]}", INSTALL))
            continue
        out.append(Check(f"import {module}", "OK", f"{time.monotonic() - started:.1f} s"))
    return out


def check_memory(minimum_gb: float = 4.0) -> list[Check]:
    try:
        import psutil
    except ImportError:
        return []
    total = psutil.virtual_memory().total / 2**30
    if total < minimum_gb:
        return [
            Check(
                "memory",
                "WARN",
                f"{total:.1f} GB; the notebooks want about {minimum_gb:g} GB",
                "close other programs; run one notebook at a time",
            )
        ]
    return [Check("memory", "OK", f"{total:.1f} GB")]
