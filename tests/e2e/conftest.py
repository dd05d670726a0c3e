"""Browser tests: JupyterLab in headless Chromium (Debian's `chromium`, driven by Playwright).

Skipped with a reason when /usr/bin/chromium (or E2E_CHROMIUM) or the playwright package is
missing. Deselect with `-m "not e2e"`."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: drives JupyterLab in a real headless browser (needs chromium + playwright)"
    )
