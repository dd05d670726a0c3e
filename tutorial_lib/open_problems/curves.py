"""Chapter 06's recorded loss curve of toy-lm's own recipe: what section 7 reads compute equivalents from.

Measured by re-running `organisms.RECIPES["toy-lm"]` (batch 64, learning rate 2e-3 after 100 warm-up steps)
to 2000 steps and evaluating the loss on `tasks.corpus_tokens(128, 32, seed=2024)` (pads masked) every 25
steps; smoothed (mean of 5 neighbouring points), then the running minimum: the best loss reached so far.
About 3 minutes on a quiet 2-core CPU, so it is recorded rather than re-run in the notebook.
"""

from __future__ import annotations

# fmt: off
TOY_LM_CURVE_STEPS: list[int] = [0, 1, 26, 51, 76, 101, 126, 151, 176, 201, 226, 251, 276, 301, 326, 351, 376, 401, 426, 451, 476, 501, 526, 551, 576, 601, 626, 651, 676, 701, 726, 751, 776, 801, 826, 851, 876, 901, 926, 951, 976, 1001, 1026, 1051, 1076, 1101, 1126, 1151, 1176, 1201, 1226, 1251, 1276, 1301, 1326, 1351, 1376, 1401, 1426, 1451, 1476, 1501, 1526, 1551, 1576, 1601, 1626, 1651, 1676, 1701, 1726, 1751, 1776, 1801, 1826, 1851, 1876, 1901, 1926, 1951, 1976, 2000]
TOY_LM_CURVE_LOSS: list[float] = [5.3715, 5.3608, 3.942, 3.2568, 2.5599, 2.1253, 1.9313, 1.8565, 1.8165, 1.7849, 1.7527, 1.7216, 1.6973, 1.6798, 1.6655, 1.6569, 1.6519, 1.6449, 1.6359, 1.6294, 1.6215, 1.6184, 1.6142, 1.6142, 1.6142, 1.6142, 1.6132, 1.6118, 1.6085, 1.6032, 1.6016, 1.5984, 1.5975, 1.5957, 1.5957, 1.5957, 1.5957, 1.5957, 1.5957, 1.5956, 1.5949, 1.5939, 1.5898, 1.5883, 1.5883, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5861, 1.5857, 1.5854, 1.5849, 1.5819, 1.5819, 1.5819, 1.5819, 1.5819, 1.5819, 1.5819, 1.5816, 1.5816, 1.5803, 1.5784]
# fmt: on

__all__ = ["TOY_LM_CURVE_LOSS", "TOY_LM_CURVE_STEPS"]
