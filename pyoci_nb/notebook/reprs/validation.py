"""Validation: a ``ValidationReport`` (ok, or a table of problems: JSON path, rule, value) and
one ``Problem``."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook.reprs.blocks import code, column_heads, fields_table, header, records_wrap, truncated
from pyoci_nb.notebook.reprs.common import MAX_TEXT_LINES, cut, esc, plural, type_name
from pyoci_nb.notebook.reprs.dispatch import register
from pyoci_nb.notebook.reprs.values import json_compact
from pyoci_nb.spec.problems import Problem, ValidationReport


def as_report(result: Any, source: str | None = None) -> Any:
    """A ``ValidationReport`` from what a validation returned (a report, or a list of problems)."""
    if hasattr(result, "problems"):
        return result
    return ValidationReport(list(result or []), source=source)


def _problem_parts(problem: Any) -> tuple[str, str, Any]:
    return (str(getattr(problem, "path", "") or ""), str(getattr(problem, "message", problem)),
            getattr(problem, "value", None))


def report_html(report: Any) -> str:
    """A validation report: ok, or a table of problems (JSON path, rule, value)."""
    problems = list(getattr(report, "problems", []) or [])
    source = getattr(report, "source", None)
    if not problems:
        verdict = '<span class="pyoci-ok">&#10003; valid</span>'
        body = ""
    else:
        verdict = f'<span class="pyoci-bad">&#10007; {esc(plural(len(problems), "problem"))}</span>'

        def row(problem, i):
            path, message, value = _problem_parts(problem)
            shown = "" if value is None else f'<code class="pyoci-v">{esc(cut(json_compact(value), 160))}</code>'
            return (f'<tr><td><code class="pyoci-v">{esc(path or "(config)")}</code></td>'
                    f'<td>{esc(cut(message, 600))}</td><td>{shown}</td></tr>')

        body = truncated(problems, row, wrap=records_wrap(column_heads("where", "rule broken", "value")))
    head = (f'<div class="pyoci-header"><span class="pyoci-type">{esc(type_name(report))}</span>'
            f'{verdict}' + (f'<span class="pyoci-fact">{esc(source)}</span>' if source else "") + "</div>")
    return head + body


def report_text(report: Any) -> str:
    """``valid``, or one line per problem: ``<JSON path>: <rule broken>``."""
    problems = list(getattr(report, "problems", []) or [])
    source = getattr(report, "source", None) or "config"
    if not problems:
        return f"{type_name(report)}: {source}: valid"
    lines = [f"{type_name(report)}: {source}: {plural(len(problems), 'problem')}"]
    for problem in problems[:MAX_TEXT_LINES - 2]:
        path, message, _ = _problem_parts(problem)
        lines.append(f"  {path or '(config)'}: {cut(message, 200)}")
    if len(problems) > MAX_TEXT_LINES - 2:
        lines.append(f"  ... {len(problems) - (MAX_TEXT_LINES - 2)} more problems")
    return "\n".join(lines)


def problem_html(problem: Any) -> str:
    """One problem: where (JSON path), the rule broken, the offending value."""
    path, message, value = _problem_parts(problem)
    rows = [("where", "JSON path of the offending value", code(path or "(config)"), ""),
            ("rule", "the rule it breaks and what to do", esc(cut(message, 600)), "")]
    if value is not None:
        rows.append(("value", "the offending value", code(cut(json_compact(value))), ""))
    return header(type_name(problem), [("", path or "(config)")]) + fields_table(rows)


def problem_text(problem: Any) -> str:
    """One problem as ``<type>: <JSON path>: <rule>`` (and the value)."""
    path, message, value = _problem_parts(problem)
    text = f"{type_name(problem)}: {path or '(config)'}: {cut(message, 400)}"
    if value is not None:
        text += f"\n  value: {cut(json_compact(value), 200)}"
    return text


register(ValidationReport, html=report_html, text=report_text)
register(Problem, html=problem_html, text=problem_text)
