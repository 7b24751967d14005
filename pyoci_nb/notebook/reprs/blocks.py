"""HTML building blocks: a scalar, chips, long lists cut with "N more" sections, collapsible
``<details>`` sections, the header line and the two-column fields table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyoci_nb.notebook.reprs.common import MAX_ITEMS, MAX_RENDERED_ITEMS, cut, esc
from pyoci_nb.notebook.reprs.values import scalar, value_note


def title_attr(text: str) -> str:
    return f' title="{esc(text)}"' if text else ""


def code(text: str) -> str:
    """``text`` (escaped) as a value in code font."""
    return f'<code class="pyoci-v">{esc(text)}</code>'


def scalar_html(value: Any, path: str = "") -> str:
    value = scalar(value)
    if value is None:
        return '<span class="pyoci-null">null</span>'
    if isinstance(value, bool):
        return f'<span class="pyoci-bool-{str(value).lower()}">{str(value).lower()}</span>'
    if isinstance(value, (int, float)):
        note = value_note(path, value)
        extra = f' <span class="pyoci-explain">({esc(note)})</span>' if note else ""
        return f'<span class="pyoci-num">{esc(value)}</span>{extra}'
    if isinstance(value, str):
        return f'<code class="pyoci-v">{esc(cut(value))}</code>' if value else '<span class="pyoci-null">""</span>'
    return f'<code class="pyoci-v">{esc(cut(str(value)))}</code>'


def truncated(items: list, render: Callable[[Any, int], str], *, joiner: str = "",
               wrap: Callable[[str], str] = lambda s: s) -> str:
    """The first ``MAX_ITEMS`` items, then the rest (up to ``MAX_RENDERED_ITEMS``) under a
    ``<details>`` saying how many, then a count of what is not rendered at all."""
    shown = joiner.join(render(item, i) for i, item in enumerate(items[:MAX_ITEMS]))
    out = wrap(shown)
    if len(items) > MAX_ITEMS:
        rest = items[MAX_ITEMS:MAX_RENDERED_ITEMS]
        hidden = joiner.join(render(item, MAX_ITEMS + i) for i, item in enumerate(rest))
        out += (f'<details><summary class="pyoci-more">{len(items) - MAX_ITEMS} more '
                f'({len(items)} in all)</summary>{wrap(hidden)}</details>')
        if len(items) > MAX_RENDERED_ITEMS:
            out += f'<div class="pyoci-more">{len(items) - MAX_RENDERED_ITEMS} more not shown</div>'
    return out


def chips(values: list, path: str = "") -> str:
    if not values:
        return '<span class="pyoci-null">(empty)</span>'
    return truncated(list(values), lambda v, i: f'<span class="pyoci-chip">{esc(cut(str(scalar(v)), 120))}</span>')


def section(name: str, body: str, *, hover: str = "", count: str = "", brief: str = "",
             explanation: str = "", open_: bool = True) -> str:
    parts = [f'<details{" open" if open_ else ""}><summary>',
             f'<span class="pyoci-name"{title_attr(hover)}>{esc(name)}</span>']
    if count:
        parts.append(f' <span class="pyoci-count">({esc(count)})</span>')
    if brief:
        parts.append(f'<span class="pyoci-brief">{esc(cut(brief, 120))}</span>')
    if explanation:
        parts.append(f' <span class="pyoci-explain">&#8212; {esc(explanation)}</span>')
    parts.append(f'</summary><div class="pyoci-body">{body}</div></details>')
    return "".join(parts)


def header(type_name: str, facts: Iterable[tuple[str, Any]], *, hover: str = "") -> str:
    parts = [f'<div class="pyoci-header"><span class="pyoci-type"{title_attr(hover)}>{esc(type_name)}</span>']
    for label, value in facts:
        if value is None or value == "":
            continue
        if label:
            parts.append(f'<span class="pyoci-fact">{esc(label)} <b>{esc(cut(str(value), 80))}</b></span>')
        else:
            parts.append(f'<span class="pyoci-fact"><b>{esc(cut(str(value), 80))}</b></span>')
    parts.append("</div>")
    return "".join(parts)


def fields_table(rows: list[tuple[str, str, str, str]]) -> str:
    """rows of (name, hover, value_html, explanation)."""
    if not rows:
        return ""
    body = "".join(
        f'<tr><th{title_attr(hover)}>{esc(name)}</th><td>{value_html}</td>'
        f'<td class="pyoci-explain">{esc(explanation)}</td></tr>'
        for name, hover, value_html, explanation in rows)
    return fields_wrap(body)


def fields_wrap(rows: str) -> str:
    """``<tr>`` rows of name / value in a fields table."""
    return f'<table class="pyoci-tbl pyoci-fields"><tbody>{rows}</tbody></table>'


def column_heads(*labels: str) -> str:
    """``<th>`` cells for the labels (escaped)."""
    return "".join(f"<th>{esc(label)}</th>" for label in labels)


def records_wrap(heads: str) -> Callable[[str], str]:
    """A ``wrap`` for ``truncated``: ``<tr>`` rows in a records table under ``heads`` (``<th>`` cells)."""
    return lambda rows: (f'<table class="pyoci-tbl pyoci-records"><thead><tr>{heads}</tr></thead>'
                         f'<tbody>{rows}</tbody></table>')
