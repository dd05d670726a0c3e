"""Numbers in stored notebook outputs compared at the precision they were printed with.

A value printed as 0.93 on one CPU can print as 0.92 on another: the computation differs in its
low-order bits (AVX2 vs AVX-512 vs ARM kernels, another BLAS path) and the value sits near a
rounding boundary. No choice of digits avoids every boundary, so the comparison allows what
rounding itself allows: a printed decimal may differ from the stored one by one unit in its last
compared digit (decimals beyond the second are not compared, as the sanitizer's truncation has
always done). Everything else in the text is still compared exactly, integers included, and a
number that moved by more than one unit still fails: noise that large means the notebook prints
more digits than its experiment supports, and the fix is to print fewer.

`align_numbers(test, ref)` copies the test outputs, replacing each number that is within tolerance
of the stored number at the same place (same surrounding text) by the stored spelling; nbval's own
comparison then runs unchanged and reports any real difference as before.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.(\d+))?(?:[eE]([-+]?\d+))?(?![\w])")
COMPARED_DECIMALS = 2  # what the float_noise sanitizer has always kept


def tolerance(token: str) -> float:
    """One unit in the last compared digit of a printed number; 0 for integers (compared exactly)."""
    match = NUMBER.fullmatch(token)
    if match is None or match.group(1) is None:
        return 0.0
    decimals = min(len(match.group(1)), COMPARED_DECIMALS)
    exponent = int(match.group(2) or 0)
    return 10.0 ** (exponent - decimals)


def close(ref: str, test: str) -> bool:
    """True when `test` may print instead of `ref` by rounding alone."""
    if ref == test:
        return True
    if ref.lstrip("-").isdigit() or test.lstrip("-").isdigit():
        return False  # counts, sizes, indices: exact
    return abs(float(ref) - float(test)) <= tolerance(ref) * (1 + 1e-9)


def _split(text: str) -> tuple[list[str], list[str]]:
    """The text between numbers, and the numbers."""
    pieces, numbers, start = [], [], 0
    for match in NUMBER.finditer(text):
        pieces.append(text[start : match.start()])
        numbers.append(match.group(0))
        start = match.end()
    pieces.append(text[start:])
    return pieces, numbers


def align_text(ref: str, test: str) -> str:
    """`test` with each close number spelled as in `ref`, when both have the same text around them."""
    ref_pieces, ref_numbers = _split(ref)
    test_pieces, test_numbers = _split(test)
    if ref_pieces != test_pieces:
        return test
    out = [test_pieces[0]]
    for r, t, after in zip(ref_numbers, test_numbers, test_pieces[1:]):
        out.append(r if close(r, t) else t)
        out.append(after)
    return "".join(out)


def _texts(outputs):
    """(key, output, field) for every text that nbval compares, in order."""
    for output in outputs:
        if output.get("output_type") == "stream":
            yield ("stream", output.get("name")), output, "text"
        elif "data" in output and isinstance(output["data"].get("text/plain"), str):
            yield ("data", "text/plain"), output["data"], "text/plain"


def align_numbers(test: list, ref: list) -> list:
    """A copy of the test outputs with in-tolerance numbers replaced by the stored ones."""
    test = copy.deepcopy(test)
    stored = defaultdict(list)
    for key, holder, field in _texts(ref):
        stored[key].append(holder[field])
    seen: dict = defaultdict(int)
    for key, holder, field in _texts(test):
        index = seen[key]
        seen[key] += 1
        if index < len(stored[key]) and isinstance(holder[field], str):
            holder[field] = align_text(stored[key][index], holder[field])
    return test
