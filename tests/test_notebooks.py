"""The one-source rules: chapters are generated from solutions, every exercise has a check,
every notebook opens with the canonical setup cell, and metadata stays clean."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tutorial_lib import notebooks
from tutorial_lib.checks import all_exercises

SOLUTIONS = sorted(notebooks.SOLUTIONS.glob("*.ipynb"))
EXPECTED = [
    "00_foundations",
    "01_superposition",
    "02_sparse_autoencoders",
    "03_probing",
    "04_activation_patching",
    "05_induction_heads",
    "06_open_problems",
    "07_circuit_discovery",
    "08_lenses_and_attribution",
]


def exercise_functions(nb) -> list[str]:
    """Names of the functions whose bodies hold a solution region."""
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code" and notebooks.BEGIN in cell.source:
            stubbed = notebooks.stub_exercises(cell.source)
            tree = ast.parse(stubbed.replace("%pip", "#pip"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and "NotImplementedError" in ast.unparse(node):
                    names.append(node.name)
    return names


def test_stub_replaces_region_and_keeps_indentation():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\ncheck(f)"
    out = notebooks.stub_exercises(src)
    assert "return x + 1" not in out
    assert '    raise NotImplementedError("Exercise: write `f`, then run its check.")' in out
    assert out.endswith("check(f)")


@pytest.mark.parametrize(
    "src",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    ],
)
def test_unbalanced_markers_are_rejected(src):
    with pytest.raises(notebooks.NotebookError):
        notebooks.stub_exercises(src)


def test_student_version_drops_solution_only_cells_and_outputs():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(notebooks.SETUP_CELL),
            nbformat.v4.new_code_cell("# solution-only\nsecret = 1"),
            nbformat.v4.new_code_cell(
                "def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION",
                outputs=[nbformat.v4.new_output("stream", text="hi")],
                execution_count=3,
            ),
        ]
    )
    student = notebooks.student_version(nb)
    sources = [c.source for c in student.cells]
    assert not any("secret" in s for s in sources)
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert "NotImplementedError" in sources[-1]


def test_from_script_inserts_setup_cell(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("# %% [markdown]\n# # Title\n# text\n\n# %%\nx = 1\n")
    target = tmp_path / "x.ipynb"
    notebooks.from_script(script, target)
    nb = nbformat.read(target, as_version=4)
    assert nb.cells[0].source == "# Title\ntext"
    assert nb.cells[1].source == notebooks.SETUP_CELL
    assert nb.cells[2].source == "x = 1"


def test_repo_url_lives_in_one_place():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((notebooks.ROOT / "pyproject.toml").read_text())
    assert project["project"]["urls"]["Homepage"] == notebooks.REPO_URL
    readme = (notebooks.ROOT / "README.md").read_text()
    for link in re.findall(r"colab\.research\.google\.com/github/([^)\s]+)", readme):
        owner_repo = "/".join(link.split("/")[:2])
        assert notebooks.REPO_URL.endswith(owner_repo), link


def test_readme_colab_links_point_at_existing_notebooks():
    readme = (notebooks.ROOT / "README.md").read_text()
    links = re.findall(r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^)\s]+\.ipynb)", readme)
    assert links, "the README links every notebook in Colab"
    for rel in links:
        assert (notebooks.ROOT / rel).exists(), f"README links {rel}, which does not exist"


def test_chapters_are_up_to_date():
    stale = notebooks.build(check=True)
    assert not stale, f"run `python -m tutorial_lib.notebooks build`: stale {[p.name for p in stale]}"


def test_chapter_names_follow_the_plan():
    for path in SOLUTIONS:
        assert path.stem in EXPECTED, f"{path.name} is not one of the planned chapters {EXPECTED}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_rules(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert notebooks.first_code_cell(nb) == notebooks.SETUP_CELL, "first code cell must be notebooks.SETUP_CELL"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, "run notebooks.execute (it cleans metadata)"
    for cell in nb.cells:
        assert set(cell.metadata) <= {"tags"}, f"cell metadata carries execution noise: {dict(cell.metadata)}"
        if cell.cell_type == "code":
            assert cell.execution_count is not None or not cell.source.strip(), "solutions are committed executed"
            assert not cell.source.rstrip().endswith(";"), (
                "a trailing ; does not hide output under nbval: use `_ = ...`"
            )


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_calls_its_check(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    registry = {ex.function_name: ex for ex in all_exercises().values() if ex.id.startswith(path.stem[:2] + ".")}
    functions = exercise_functions(nb)
    assert functions, f"{path.name} has no exercises"
    for name in functions:
        assert name in registry, f"exercise `{name}` has no check registered in tutorial_lib.checks"
        check = registry[name].check.__name__
        assert re.search(rf"\b{check}\(\s*{name}\b", code), f"`{name}` is never passed to {check}(...)"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_generated_stubs_fail_their_checks(path: Path):
    """The invert test: the stub the student starts from must not pass its check."""
    nb = notebooks.student_version(nbformat.read(path, as_version=4))
    registry = {ex.function_name: ex for ex in all_exercises().values() if ex.id.startswith(path.stem[:2] + ".")}
    for cell in nb.cells:
        if cell.cell_type != "code" or "NotImplementedError" not in cell.source:
            continue
        tree = ast.parse(cell.source.replace("%pip", "#pip"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in registry:
                namespace: dict = {}
                module = ast.Module(body=[node], type_ignores=[])
                exec(
                    compile("from __future__ import annotations\n" + ast.unparse(module), path.name, "exec"), namespace
                )
                result = registry[node.name].check(namespace[node.name])
                assert result.status == "not attempted", f"the stub of {node.name} got {result.status}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_outputs_show_every_check_passing(path: Path):
    """nbval proves the stored outputs are what the code produces; these outputs must show no failed
    check and no error, so a solution whose own check fails cannot be committed."""
    nb = nbformat.read(path, as_version=4)
    passed = 0
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"cell {index} stores an error: {output.get('ename')}"
            text = output.get("text", "") if output.output_type == "stream" else ""
            assert "✘" not in text and "not attempted yet" not in text, f"cell {index}: a check did not pass:\n{text}"
            passed += text.count("✔")
    assert passed >= len(exercise_functions(nb)), "every exercise's check should print its ✔ line"
