"""One root error, grouped by what the caller should do about it.

- ``FatalError``: stop; a person must act (bad configuration, bad mapping, exhausted API budget).
- ``TransientError``: retry later; the cursor stays where it was.
- ``SkippableError``: this one record is bad; quarantine it and carry on with the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class RevsyncError(Exception):
    """Root of every error the product raises on purpose."""

    #: what the user should run or do next; shown after the message
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  → {self.hint}" if self.hint else base


class FatalError(RevsyncError):
    """Stops the run: retrying will not help until someone changes something."""


class AuthError(FatalError):
    """Salesforce cannot be logged in to, and no wait will change that: credentials refused, a revoked
    or refused token, a TLS certificate that does not verify, a URL that is not https. A person must
    change the configuration or the org's settings before the next run."""


class TransientError(RevsyncError):
    """May succeed if tried again later (network, locks, a busy org)."""


class SkippableError(RevsyncError):
    """Concerns one record only; the record is quarantined and the run goes on."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, with where it is."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ProblemList:
    """Collects every problem of an input before failing, so users fix them all in one go."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __len__(self) -> int:
        return len(self.problems)


class ValidationFailed(FatalError):
    """An input (import file, configuration, mapping) has one or more problems; nothing was written."""

    def __init__(self, source: str, problems: list[Problem], *, hint: str | None = None):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s); nothing was changed."]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint=hint)


class ConfigError(ValidationFailed):
    """The configuration has problems; each names the key and the file."""


class FiscalCalendarError(FatalError):
    """A date falls outside every known fiscal period."""
