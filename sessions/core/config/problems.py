"""The problems found in a config file (``ConfigProblem``) and the error that lists them
(``ConfigError``): what finding, reading, validating and applying the file raise. Apart from the
schema, so that a module that only says or catches a problem (the services, finding the file)
does not load the pydantic models and YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong (or, as a warning, ignored) in a config file."""

    file: str
    line: int | None
    path: str  # dotted key path, e.g. "projects.web.agent"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is unusable. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def problem_error(file: str | Path, message: str, *, line: int | None = None, path: str = "") -> ConfigError:
    return ConfigError([ConfigProblem(str(file), line, path, message)])
