"""A ``SpecDiff``: one row per JSON path, removed in red, added in green, changed in both; as
text, unified-diff-like lines."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.blocks import column_heads, header, records_wrap, title_attr, truncated
from pyoci_nb.notebook.reprs.common import cut, esc, type_name
from pyoci_nb.notebook.reprs.dispatch import register
from pyoci_nb.notebook.reprs.values import json_compact, scalar
from pyoci_nb.spec.diff import SpecDiff

_DIFF_KINDS = {"added": "+", "add": "+", "removed": "-", "remove": "-", "changed": "~", "change": "~",
               "replace": "~", "modified": "~"}


def diff_entries(diff: Any) -> list[tuple[str, str, Any, Any]]:
    """``(mark, path, old, new)`` of each difference, mark being ``+`` (only in the new spec),
    ``-`` (only in the old one) or ``~`` (changed).  Duck-typed over the SpecDiff model:
    an iterable (or ``.changes``/``.entries``/``.items``) of entries with ``path``, ``old``,
    ``new`` and optionally ``kind``/``op``."""
    entries = None
    for attribute in ("changes", "entries", "differences"):
        candidate = getattr(diff, attribute, None)
        if candidate is not None and not callable(candidate):
            entries = candidate
            break
    if entries is None:
        entries = list(diff)
    missing = _missing_marker(diff)
    result = []
    for entry in entries:
        data = entry if isinstance(entry, dict) else {k: getattr(entry, k, None) for k in
                                                        ("path", "old", "new", "kind", "op", "change")}
        path = str(data.get("path") or "")
        old, new = data.get("old"), data.get("new")
        kind = data.get("kind") or data.get("op") or data.get("change")
        kind = str(scalar(kind)).lower() if kind is not None else ""
        mark = _DIFF_KINDS.get(kind)
        if mark is None:
            mark = "+" if _absent(old, missing) else "-" if _absent(new, missing) else "~"
        result.append((mark, path, old, new))
    return result


def _missing_marker(diff: Any) -> Any:
    return getattr(type(diff), "MISSING", None)


def _absent(value: Any, missing: Any) -> bool:
    return value is None or (missing is not None and value is missing)


def _diff_labels(diff: Any) -> tuple[str, str]:
    return (str(getattr(diff, "old_label", None) or getattr(diff, "left_label", None) or "before"),
            str(getattr(diff, "new_label", None) or getattr(diff, "right_label", None) or "after"))


def diff_html(diff: Any) -> str:
    """A spec diff: one row per JSON path, removed in red, added in green, changed in both."""
    entries = diff_entries(diff)
    old_label, new_label = _diff_labels(diff)
    counts = {m: sum(1 for e in entries if e[0] == m) for m in "+-~"}
    facts = [("", f"{old_label} \u2192 {new_label}"), ("changed", counts["~"]), ("added", counts["+"]),
             ("removed", counts["-"])]
    if not entries:
        return header(type_name(diff), facts[:1]) + '<div class="pyoci-ok">no differences</div>'
    css = {"+": "pyoci-diff-add", "-": "pyoci-diff-remove", "~": "pyoci-diff-change"}

    def show(value):
        if _absent(value, _missing_marker(diff)):
            return ""
        return f'<code class="pyoci-v">{esc(cut(json_compact(value), 200))}</code>'

    def row(entry, i):
        mark, path, old, new = entry
        hover = title_attr(glossary.explain(path))
        return (f'<tr class="{css[mark]}"><td class="pyoci-mark">{esc(mark)}</td>'
                f'<td><code class="pyoci-v"{hover}>{esc(path)}</code></td>'
                f'<td class="pyoci-old">{show(old)}</td><td class="pyoci-new">{show(new)}</td></tr>')

    table = truncated(entries, row, wrap=records_wrap(column_heads("", "path", old_label, new_label)))
    return header(type_name(diff), facts) + table


def diff_text(diff: Any) -> str:
    """Unified-diff-like lines that read in a terminal: ``- path: old`` / ``+ path: new``."""
    entries = diff_entries(diff)
    old_label, new_label = _diff_labels(diff)
    if not entries:
        return f"{type_name(diff)}: no differences ({old_label} -> {new_label})"
    counts = {m: sum(1 for e in entries if e[0] == m) for m in "+-~"}
    lines = [f"{type_name(diff)}: {counts['~']} changed, {counts['+']} added, {counts['-']} removed",
             f"--- {old_label}", f"+++ {new_label}"]
    missing = _missing_marker(diff)
    for mark, path, old, new in entries:
        if mark in "-~" and not _absent(old, missing):
            lines.append(f"- {path}: {cut(json_compact(old), 150)}")
        if mark in "+~" and not _absent(new, missing):
            lines.append(f"+ {path}: {cut(json_compact(new), 150)}")
    return "\n".join(lines)


register(SpecDiff, html=diff_html, text=diff_text)
