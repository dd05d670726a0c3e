"""tutorial_lib.tasks.fact_prompts: answers and entity positions."""

from __future__ import annotations

import json
from pathlib import Path

from tutorial_lib import tasks

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


def test_facts():
    f = tasks.facts(30, relation="capital", seed=0)
    for i in range(30):
        assert f.prompts[i] == f"The capital of {f.entity[i]} is"
        assert f.attribute[i] == tasks.FACTS["capital"][1][f.entity[i]]
        assert tasks.VOCAB[int(f.tokens[i, int(f.entity_pos[i])])] == f.entity[i]
        assert tasks.VOCAB[int(f.answer_token[i])] == f.attribute[i]
