"""One exception family for the whole package.

Every error a user can trigger derives from :class:`BayesAblationError`. Data problems are
collected (never raised one at a time) so a user sees every problem in a file at once.
"""

from __future__ import annotations

from dataclasses import dataclass


class BayesAblationError(Exception):
    """Base class of every error raised on purpose by bayes_ablation."""

    exit_code: int = 1


@dataclass(frozen=True)
class Problem:
    """One problem found in an input table.

    ``row`` is the 1-based data row as a spreadsheet user counts it (the header is row 0 in a
    CSV, so data row 1 is file line 2); ``None`` when the problem concerns the whole table.
    """

    file: str
    row: int | None
    column: str | None
    value: object
    expected: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        value = self.value.item() if hasattr(self.value, "item") and \
            getattr(self.value, "ndim", 1) == 0 else self.value   # NumPy scalar: plain repr
        shown = "" if value is None else f": got {value!r}"
        return f"{where}{shown}; expected {self.expected}"


@dataclass(frozen=True)
class DataWarning:
    """Something unusual in an input table that is kept, not refused: where (file, column,
    the 1-based data rows), the value found and what it means, each apart."""

    file: str
    column: str | None
    rows: tuple[int, ...]
    value: object
    message: str

    def location(self, max_rows: int = 12) -> str:
        where = self.file
        if self.column is not None:
            where += f", column '{self.column}'"
        if self.rows:
            shown = ", ".join(map(str, self.rows[:max_rows]))
            more = f", … ({len(self.rows)} rows)" if len(self.rows) > max_rows else ""
            where += f", row{'s' if len(self.rows) > 1 else ''} {shown}{more}"
        return where

    def __str__(self) -> str:
        value = self.value.item() if hasattr(self.value, "item") else self.value
        return f"{self.location()}: value {value!r} — {self.message}"

    def to_dict(self) -> dict[str, object]:
        value = self.value.item() if hasattr(self.value, "item") else self.value
        return {"file": self.file, "column": self.column, "rows": list(self.rows),
                "n_rows": len(self.rows), "value": value, "message": self.message,
                "text": str(self)}


class DataValidationError(BayesAblationError):
    """An input table failed validation; ``problems`` lists every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem], max_shown: int = 50) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:max_shown])
        more = len(self.problems) - max_shown
        tail = f"\n  ... and {more} more" if more > 0 else ""
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in input data:\n{shown}{tail}")


class SpecError(BayesAblationError):
    """An analysis specification (models/*.toml) is invalid."""

    exit_code = 2

    def __init__(self, path: str, messages: list[str]) -> None:
        self.path = path
        self.messages = list(messages)
        body = "\n".join(f"  - {m}" for m in self.messages)
        super().__init__(f"invalid analysis spec {path}:\n{body}")


class InputError(BayesAblationError):
    """Inputs that do not fit together (a table for another endpoint, a spec for another
    command): invalid input, exit code 2."""

    exit_code = 2


class BundleError(BayesAblationError):
    """A result bundle cannot be written or read (exists already, damaged, incomplete)."""

    exit_code = 2


class SamplingError(BayesAblationError):
    """The sampler failed (and any fallback failed too)."""

    exit_code = 1


class DiagnosticsGateFailed(BayesAblationError):
    """Raised by the CLI under ``--strict`` when the convergence gate fails."""

    exit_code = 3
