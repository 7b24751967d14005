"""``process``: its arguments as one shell line, its environment as a KEY / value table, and
the command and user on its collapsed section's line."""

from __future__ import annotations

import shlex
from typing import Any

from pyoci_nb.notebook.reprs.blocks import fields_wrap, scalar_html, truncated
from pyoci_nb.notebook.reprs.common import cut, esc
from pyoci_nb.notebook.reprs.paths import register_path
from pyoci_nb.notebook.reprs.values import plain


def _process_brief(value: Any) -> str:
    data = plain(value)
    user = data.get("user") or {}
    parts = [shlex.join(str(a) for a in data.get("args") or [])]
    if user:
        parts.append(f"uid {user.get('uid')} gid {user.get('gid')}")
    return " · ".join(p for p in parts if p)


def _env_html(value: Any, path: str = "process.env", depth: int = 0) -> str:
    entries = [str(v) for v in (value or [])]

    def row(entry, i):
        name, sep, val = entry.partition("=")
        shown = scalar_html(val) if sep else '<span class="pyoci-bad">no "=": not KEY=value</span>'
        return f'<tr><th>{esc(cut(name, 80))}</th><td>{shown}</td></tr>'

    if not entries:
        return '<span class="pyoci-null">(empty)</span>'
    return truncated(entries, row, wrap=fields_wrap)


def _env_brief(value: Any) -> str:
    return " ".join(str(v).partition("=")[0] for v in list(value)[:8]) + (" ..." if len(value) > 8 else "")


def _args_html(value: Any, path: str = "process.args", depth: int = 0) -> str:
    args = [str(a) for a in (value or [])]
    if not args:
        return '<span class="pyoci-null">(none)</span>'
    return f'<code class="pyoci-v">{esc(cut(shlex.join(args)))}</code>'


def _args_text(value: Any) -> list[str]:
    return [cut(shlex.join(str(a) for a in value or []), 160) or "[]"]


register_path("process", brief=_process_brief)
register_path("process.env", html=_env_html, brief=_env_brief, section=True)
register_path("process.args", html=_args_html, text=_args_text)
