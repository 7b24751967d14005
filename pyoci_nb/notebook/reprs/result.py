"""The result of a program: ``subprocess.CompletedProcess`` (and the runtime's
``CompletedContainer``, registered by ``container.py``): exit status, command, output."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from pyoci_nb.notebook.reprs.blocks import section
from pyoci_nb.notebook.reprs.common import MAX_OUTPUT_LINES, cut, esc, plural, type_name
from pyoci_nb.notebook.reprs.dispatch import register


def _output_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _args_of(result: Any) -> str:
    args = getattr(result, "args", None)
    if isinstance(args, (list, tuple)):
        return shlex.join(str(a) for a in args)
    return "" if args is None else str(args)


def run_result_html(result: Any) -> str:
    """The result of run()/exec(): exit status, the command, and its output."""
    code = getattr(result, "returncode", None)
    if code is None:
        verdict = '<span class="pyoci-warn">no exit status</span>'
    elif code == 0:
        verdict = '<span class="pyoci-ok">exit 0</span>'
    elif code < 0 or code > 128:
        signal_number = -code if code < 0 else code - 128
        verdict = f'<span class="pyoci-bad">exit {esc(code)} (signal {esc(signal_number)})</span>'
    else:
        verdict = f'<span class="pyoci-bad">exit {esc(code)}</span>'
    facts = "".join(f'<span class="pyoci-fact">{esc(label)} <b>{esc(cut(str(value), 100))}</b></span>'
                    for label, value in (("args", _args_of(result)), ("id", getattr(result, "id", None)))
                    if value)
    head = (f'<div class="pyoci-header"><span class="pyoci-type">{esc(type_name(result))}</span>'
            f'{verdict}{facts}</div>')
    sections = []
    for name in ("stdout", "stderr"):
        text = _output_text(getattr(result, name, None))
        if text is None:
            continue
        lines = text.splitlines()
        shown = "\n".join(lines[:MAX_OUTPUT_LINES])
        more = (f'<div class="pyoci-more">{len(lines) - MAX_OUTPUT_LINES} more lines '
                f'({len(lines)} in all)</div>') if len(lines) > MAX_OUTPUT_LINES else ""
        body = f'<pre class="pyoci-pre">{esc(shown)}</pre>{more}' if text else '<span class="pyoci-null">(empty)</span>'
        sections.append(section(name, body, count=plural(len(lines), "line"), open_=bool(text)))
    if not sections:
        sections.append('<div class="pyoci-explain">output was not captured (capture_output=False)</div>')
    return head + "".join(sections)


def run_result_text(result: Any) -> str:
    """Exit status and command, then the first lines of stdout and stderr."""
    code = getattr(result, "returncode", None)
    lines = [f"{type_name(result)}: exit {code}" + (f", args {cut(_args_of(result), 120)}" if _args_of(result) else "")]
    for name in ("stdout", "stderr"):
        text = _output_text(getattr(result, name, None))
        if text is None:
            continue
        out = text.splitlines()
        lines.append(f"{name} ({plural(len(out), 'line')}):" if out else f"{name}: (empty)")
        lines.extend(f"  {cut(line, 200)}" for line in out[:20])
        if len(out) > 20:
            lines.append(f"  ... {len(out) - 20} more lines")
    return "\n".join(lines)


register(subprocess.CompletedProcess, html=run_result_html, text=run_result_text)
