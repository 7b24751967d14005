"""Form values -> JSON values: integers, sizes, shell words, lists; ``FieldError`` says why a
value cannot be converted."""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyoci_nb.errors import ConfigError
from pyoci_nb.notebook.reprs.values import RLIM_INFINITY
from pyoci_nb.runtime.cgroups.commands import parse_size as parse_runc_size


class FieldError(ValueError):
    """A form value that cannot become JSON (e.g. "abc" for a number); the message says why."""


def parse_int(text: str, *, minimum: int | None = None, allow_unlimited: bool = False) -> int | None:
    """``"1024"`` -> 1024, ``""`` -> None; ``"unlimited"`` -> 2**64-1 when allowed."""
    text = text.strip()
    if not text:
        return None
    if allow_unlimited and text.lower() in ("unlimited", "infinity"):
        return RLIM_INFINITY
    try:
        value = int(text, 0)
    except ValueError:
        raise FieldError(f"not an integer: {text!r}") from None
    if minimum is not None and value < minimum:
        raise FieldError(f"must be >= {minimum}, got {value}")
    return value


def parse_size(text: str) -> int | None:
    """A size in bytes: ``"1073741824"``, ``"512m"``, ``"1g"``, ``"64KiB"`` (powers of 1024, the
    parser of ``pyoci update --memory``); ``"-1"`` means no limit; ``""`` -> None."""
    if not text.strip():
        return None
    try:
        return parse_runc_size(text, "size", allow_unlimited=True)
    except ConfigError:
        raise FieldError(f"not a size: {text!r} (use bytes or a k/m/g/t suffix, e.g. 512m)") from None


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_args(text: str) -> list[str] | None:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FieldError(f"cannot split into words: {exc}") from None
    return words or None


def parse_int_list(text: str) -> list[int] | None:
    values = [parse_int(part, minimum=0) for part in re.split(r"[,\s]+", text.strip()) if part]
    return [v for v in values if v is not None] or None


def rlimit_text(value: Any) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)
