"""The host probe (``pyoci_nb.probe()``): can containers run here, then one row per check,
with why and how to fix each failure."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook.probe import ProbeResult
from pyoci_nb.notebook.reprs.blocks import column_heads, records_wrap, section, truncated
from pyoci_nb.notebook.reprs.common import cut, esc, exception_text, type_name
from pyoci_nb.notebook.reprs.dispatch import register
from pyoci_nb.notebook.reprs.tree_html import dict_html


def probe_html(result: Any) -> str:
    """The host probe: can containers run here, then one row per check (why and fix for failures)."""
    checks = list(getattr(result, "checks", []) or [])
    try:
        summary = result.summary()
        can_run = bool(result.can_run_containers)
    except Exception as exc:
        summary, can_run = f"summary unavailable: {exception_text(exc)}", False
    verdict = (f'<span class="pyoci-ok">&#10003; {esc(summary)}</span>' if can_run
               else f'<span class="pyoci-bad">&#10007; {esc(summary)}</span>')
    head = f'<div class="pyoci-header"><span class="pyoci-type">{esc(type_name(result))}</span>{verdict}</div>'

    def row(check, i):
        ok = bool(getattr(check, "ok", False))
        mark = '<span class="pyoci-ok">ok</span>' if ok else '<span class="pyoci-bad">missing</span>'
        detail = esc(cut(str(getattr(check, "detail", "") or ""), 200))
        why = "" if ok else esc(cut(str(getattr(check, "why", "") or ""), 400))
        fix = "" if ok else esc(cut(str(getattr(check, "fix", "") or ""), 400))
        return (f'<tr><td>{mark}</td><td><code class="pyoci-v">{esc(getattr(check, "name", ""))}</code></td>'
                f'<td>{detail}</td><td>{why}</td><td>{fix}</td></tr>')

    table = truncated(checks, row, wrap=records_wrap(column_heads("", "check", "detail", "why", "fix")))
    context = getattr(result, "context", None) or {}
    extra = section("context", dict_html(context, "", 1), count=str(len(context)), open_=False) if context else ""
    return head + table + extra


def probe_text(result: Any) -> str:
    """The host probe as text: the verdict, one line per check, why and fix under failures."""
    checks = list(getattr(result, "checks", []) or [])
    try:
        summary = result.summary()
    except Exception as exc:
        summary = f"summary unavailable: {exception_text(exc)}"
    lines = [f"{type_name(result)}: {summary}"]
    for check in checks:
        ok = bool(getattr(check, "ok", False))
        detail = str(getattr(check, "detail", "") or "") if ok else ""
        lines.append(f"  {'ok     ' if ok else 'MISSING'} {getattr(check, 'name', '')}"
                     + (f": {cut(detail, 100)}" if detail else ""))
        if not ok:
            lines.append(f"      why: {cut(str(getattr(check, 'why', '') or ''), 200)}")
            lines.append(f"      fix: {cut(str(getattr(check, 'fix', '') or ''), 200)}")
    return "\n".join(lines)


register(ProbeResult, html=probe_html, text=probe_text)
