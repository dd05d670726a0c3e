"""What the grader reports: per exercise a status and a hint, per cell what went wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["STATUSES", "CellEvent", "ExerciseResult", "NotebookReport"]

STATUSES = ("passed", "failed", "not attempted", "missing")


@dataclass
class ExerciseResult:
    exercise: str
    title: str
    status: str  # one of STATUSES
    hint: str = ""


@dataclass
class CellEvent:
    """Something that happened while executing one cell (1-based index over all cells)."""

    cell: int | None
    kind: str  # "error" | "timeout" | "kernel died" | "kernel restarted" | "not run" | "kernel"
    message: str

    def line(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "notebook"
        return f"{where}: {self.message}"


@dataclass
class NotebookReport:
    path: str
    chapter: str | None
    chapter_name: str | None
    results: list[ExerciseResult] = field(default_factory=list)
    events: list[CellEvent] = field(default_factory=list)
    error: str | None = None  # the notebook could not be graded at all (not JSON, kernel did not start)
    seconds: float = 0.0
    cached: bool = False

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def status_of(self, exercise_id: str) -> str | None:
        return next((r.status for r in self.results if r.exercise == exercise_id), None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(passed=self.passed, total=self.total)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NotebookReport:
        return cls(
            path=d["path"],
            chapter=d.get("chapter"),
            chapter_name=d.get("chapter_name"),
            results=[ExerciseResult(**r) for r in d.get("results", [])],
            events=[CellEvent(**e) for e in d.get("events", [])],
            error=d.get("error"),
            seconds=d.get("seconds", 0.0),
            cached=d.get("cached", False),
        )
