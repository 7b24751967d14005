"""Problems found in a config.json, and the report that lists them (standard library only).

A ``Problem`` names the JSON path of the offending value (``process.capabilities.bounding[2]``),
the rule it breaks and the value itself.  The runtime's pre-flight check, ``pyoci validate``,
``Bundle.validate()`` and the pydantic models all speak in these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyoci_nb.richrepr import ReprMixin  # noqa: F401 -- re-exported for the spec models

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def join_path(base: str, key: str | int) -> str:
    """The JSON path of ``key`` inside ``base``: ``join_path("process", "cwd") == "process.cwd"``,
    ``join_path("mounts", 2) == "mounts[2]"``; keys that are not identifiers (sysctl names,
    annotations) are quoted: ``linux.sysctl["net.ipv4.ip_forward"]``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if not _IDENTIFIER.match(key):
        return f'{base}["{key}"]' if base else f'["{key}"]'
    return f"{base}.{key}" if base else key


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``path`` is the JSON path of the offending value ("" for the whole
    document), ``message`` the rule (and what to do), ``value`` the offending value."""

    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        where = self.path or "(config)"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        """JSON-friendly form (``pyoci validate --format json``)."""
        return {"path": self.path, "message": self.message, "value": self.value}


@dataclass
class ValidationReport(ReprMixin):
    """Every problem found in one config (or bundle); ``ok`` when there are none.

    Iterating yields the problems; ``str()`` lists them one a line."""

    problems: list[Problem] = field(default_factory=list)
    source: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def __bool__(self) -> bool:  # a report is truthy when valid, like ``ok``
        return self.ok

    def __str__(self) -> str:
        name = self.source or "config"
        if self.ok:
            return f"{name}: valid"
        lines = [f"{name}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise ``ConfigError`` listing every problem, if there is any."""
        if not self.ok:
            raise config_error(self.problems, self.source)


def config_error(problems: Iterable[Problem], source: str | None = None):
    """A ``ConfigError`` whose message lists every problem with its JSON path; ``where`` is the
    first problem's path (or ``source``), ``problems`` keeps the list."""
    from pyoci_nb.errors import ConfigError

    problems = list(problems)
    count = len(problems)
    if count == 1:
        what = f"{problems[0].path or '(config)'}: {problems[0].message}"
    else:
        what = f"{count} problems:\n" + "\n".join(f"  {p}" for p in problems)
    error = ConfigError(f"invalid config: {what}" if source is None else f"invalid config {source}: {what}",
                        hint="fix the listed fields (runtime-spec config.md / config-linux.md)")
    error.problems = problems
    error.where = problems[0].path if problems else source
    return error
