"""Any model, dict or list as HTML: simple fields in a table, nested ones as collapsible
sections, lists of records as tables, the path's picture where one is registered."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.blocks import (
    chips,
    fields_table,
    fields_wrap,
    records_wrap,
    scalar_html,
    section,
    title_attr,
    truncated,
)
from pyoci_nb.notebook.reprs.common import MAX_ITEMS, cut, esc
from pyoci_nb.notebook.reprs.paths import PATH_BRIEF, PATH_HTML, SECTION_PATHS, special_for
from pyoci_nb.notebook.reprs.values import (
    field_descriptions,
    hover_text,
    is_model,
    is_scalar,
    join_path,
    json_compact,
    model_items,
    plain,
    scalar,
)


def is_complex(value: Any) -> bool:
    """Values shown as their own collapsible section rather than a table row."""
    if is_model(value):
        return True
    if isinstance(value, dict):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return any(not is_scalar(v) for v in value) or len(value) > MAX_ITEMS
    return False


def count_text(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return str(len(value))
    return ""


def node_html(value: Any, path: str, depth: int = 0) -> str:
    """The HTML of one value at JSON ``path`` (a picture when there is one for that path)."""
    special = special_for(PATH_HTML, path)
    if special is not None:
        return special(value, path, depth)
    if is_model(value):
        return model_html(value, path, depth)
    if isinstance(value, dict):
        return dict_html(value, path, depth)
    if isinstance(value, (list, tuple)):
        if all(is_scalar(v) for v in value):
            return chips(list(value), path)
        if all(is_model(v) or isinstance(v, dict) for v in value):
            return records_html(list(value), path)
        return truncated(list(value), lambda v, i: f"<div>{node_html(v, join_path(path, i), depth + 1)}</div>")
    return scalar_html(value, path)


def model_html(obj: Any, path: str, depth: int = 0) -> str:
    """A model's fields: simple ones in a table, nested ones as collapsible sections."""
    rows, sections = [], []
    for key, value, description in model_items(obj):
        child = join_path(path, key)
        hover = hover_text(child, description)
        explanation = glossary.explain(child)
        if is_complex(value) or child in SECTION_PATHS:
            sections.append(section(
                key, node_html(value, child, depth + 1), hover=hover, count=count_text(value),
                brief=brief_of(value, child), explanation=explanation,
                open_=open_by_default(value, child, depth)))
        else:
            rows.append((key, hover, node_html(value, child, depth + 1), explanation))
    return fields_table(rows) + "".join(sections)


def open_by_default(value: Any, path: str, depth: int) -> bool:
    if glossary.normalize_path(path) in CLOSED_SECTIONS:
        return False
    size = len(value) if isinstance(value, (list, tuple, dict)) else 0
    return depth <= 1 and size <= 2 * MAX_ITEMS


#: Sections shown collapsed at first (long or rarely read).
CLOSED_SECTIONS = {"linux.seccomp", "linux.resources.devices", "linux.devices", "process.env",
                    "hooks", "annotations", "linux.sysctl", "state.annotations"}


def dict_html(value: dict, path: str, depth: int) -> str:
    items = list(value.items())
    if not items:
        return '<span class="pyoci-null">(empty)</span>'

    def row(item, i):
        key, v = item
        return (f'<tr><th>{esc(cut(str(key), 120))}</th>'
                f'<td>{node_html(v, join_path(path, str(key)), depth + 1)}</td></tr>')

    return truncated(items, row, wrap=fields_wrap)


#: Preferred column order of record tables (others follow in the model's order).
COLUMN_ORDER = {
    "mounts": ("destination", "type", "source", "options"),
    "process.rlimits": ("type", "soft", "hard"),
    "linux.namespaces": ("type", "path"),
    "linux.devices": ("path", "type", "major", "minor", "fileMode", "uid", "gid"),
    "linux.resources.devices": ("allow", "type", "major", "minor", "access"),
}


def records_html(items: list, path: str) -> str:
    """A table with one row per item (mounts, rlimits, namespaces, id mappings, devices ...)."""
    if not items:
        return '<span class="pyoci-null">(empty)</span>'
    rows = [plain(item) for item in items]
    descriptions = {}
    for item in items:
        descriptions.update({k: v for k, v in field_descriptions(type(item)).items() if v})
    columns: list[str] = []
    for name in COLUMN_ORDER.get(glossary.normalize_path(path), ()):
        if any(name in row for row in rows):
            columns.append(name)
    for row in rows:
        for name in row:
            if name not in columns:
                columns.append(name)
    head = "".join(
        f'<th{title_attr(hover_text(join_path(path + "[]", name), descriptions.get(name, "")))}>{esc(name)}</th>'
        for name in columns)

    def cell(value, column_path):
        if isinstance(value, list) and all(is_scalar(v) for v in value):
            return chips(value)
        if isinstance(value, (dict, list)):
            return f'<code class="pyoci-v">{esc(cut(json_compact(value)))}</code>'
        if value is None:
            return ""
        return scalar_html(value, column_path)

    def render_row(row, i):
        cells = "".join(f"<td>{cell(row.get(c), join_path(join_path(path, i), c))}</td>" for c in columns)
        return f"<tr>{cells}</tr>"

    return truncated(rows, render_row, wrap=records_wrap(head))


def brief_of(value: Any, path: str) -> str:
    """A few words on a collapsed section's line."""
    special = special_for(PATH_BRIEF, path)
    if special is not None:
        try:
            return special(value)
        except Exception:
            return ""
    if isinstance(value, (list, tuple)) and value and all(is_scalar(v) for v in value):
        return " ".join(str(scalar(v)) for v in value[:6]) + (" ..." if len(value) > 6 else "")
    return ""
