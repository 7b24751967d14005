"""What every repr shares: the limits, escaping, cutting with a count, plural counts, the
stylesheet (``style.css``, read once) and the ``<div class="pyoci-repr">`` around a body."""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path
from typing import Any

#: List items shown before the rest is tucked under a "N more" section (HTML) or summarised (text).
MAX_ITEMS = 12


#: Items rendered at all; past this only a count is shown.
MAX_RENDERED_ITEMS = 400


#: Characters of one string value shown before it is cut.
MAX_STRING = 300


#: Lines of a text repr.
MAX_TEXT_LINES = 80


#: Lines of a program's output shown by a run result's repr.
MAX_OUTPUT_LINES = 200


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def bound_lines(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` lines, the last one saying how many were left out."""
    lines = text.splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    kept = lines[: limit - 1]
    kept.append(f"... ({len(lines) - len(kept)} more lines)")
    return "\n".join(kept)


def cut(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def type_name(obj) -> str:
    try:
        return type(obj).__name__
    except Exception:  # pragma: no cover - type() of anything has a name
        return "object"


def exception_text(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "(unprintable message)"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def failure_html(obj, exc: BaseException) -> str:
    return (f'<div class="pyoci-failed">repr of {esc(type_name(obj))} failed: '
            f'{esc(exception_text(exc))}</div>')


@functools.lru_cache(maxsize=1)
def stylesheet() -> str:
    """The ``<style>`` block embedded in every HTML repr (style.css, read once)."""
    css = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
    return f"<style>{css}</style>"


def wrap(body: str) -> str:
    """``body`` inside ``<div class="pyoci-repr">`` with the stylesheet (which is scoped to it)."""
    try:
        style = stylesheet()
    except Exception:  # a repr must never raise: unstyled is better than nothing
        style = ""
    return f'<div class="pyoci-repr">{style}{body}</div>'
