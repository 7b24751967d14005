"""Any model, dict or list as bounded, YAML-like text lines (the path's own lines where a
renderer is registered for it)."""

from __future__ import annotations

import json
from typing import Any

from pyoci_nb.notebook.reprs.common import MAX_ITEMS, cut
from pyoci_nb.notebook.reprs.paths import PATH_TEXT, special_for
from pyoci_nb.notebook.reprs.values import (
    is_model,
    is_scalar,
    join_path,
    json_compact,
    model_items,
    plain,
    scalar,
    value_note,
)

INDENT = "  "


def scalar_text(value: Any, path: str = "") -> str:
    value = scalar(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(cut(value, 160), ensure_ascii=False) if (not value or value != value.strip()
                                                                      or any(ch in value for ch in "\n\t:#"))\
            else cut(value, 160)
    note = value_note(path, value)
    return f"{value} ({note})" if note else str(value)


def inline_list(values: list, limit: int = 10) -> str:
    shown = ", ".join(scalar_text(v) for v in values[:limit])
    more = f", ... {len(values) - limit} more" if len(values) > limit else ""
    return f"[{shown}{more}]"


def record_line(record: Any) -> str:
    data = plain(record)
    if not isinstance(data, dict):
        return scalar_text(data)
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and all(is_scalar(v) for v in value):
            parts.append(f"{key}={','.join(str(v) for v in value[:12])}" + (",..." if len(value) > 12 else ""))
        elif isinstance(value, (dict, list)):
            parts.append(f"{key}={cut(json_compact(value), 60)}")
        else:
            parts.append(f"{key}={scalar_text(value)}")
    return cut(" ".join(parts), 160)


def node_text(value: Any, path: str, level: int) -> list[str]:
    """The lines (indented ``level`` steps) showing a value's contents."""
    special = special_for(PATH_TEXT, path)
    if special is not None:
        return [INDENT * level + line for line in special(value)]
    pad = INDENT * level
    if is_model(value):
        lines = []
        for key, item, _ in model_items(value):
            lines.extend(keyed_text(key, item, join_path(path, key), level))
        return lines
    if isinstance(value, dict):
        lines = []
        items = list(value.items())
        for key, item in items[:MAX_ITEMS]:
            lines.extend(keyed_text(str(key), item, join_path(path, str(key)), level))
        if len(items) > MAX_ITEMS:
            lines.append(f"{pad}... {len(items) - MAX_ITEMS} more")
        return lines
    if isinstance(value, (list, tuple)):
        lines = [f"{pad}- {record_line(item)}" for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            lines.append(f"{pad}... {len(value) - MAX_ITEMS} more ({len(value)} in all)")
        return lines
    return [pad + scalar_text(value, path)]


def keyed_text(key: str, value: Any, path: str, level: int) -> list[str]:
    pad = INDENT * level
    special = special_for(PATH_TEXT, path)
    if special is not None:
        lines = special(value)
        if len(lines) == 1:
            return [f"{pad}{key}: {lines[0]}"]
        return [f"{pad}{key}:"] + [pad + INDENT + line for line in lines]
    if is_scalar(value):
        return [f"{pad}{key}: {scalar_text(value, path)}"]
    if isinstance(value, (list, tuple)) and all(is_scalar(v) for v in value):
        return [f"{pad}{key}: {inline_list(list(value))}"]
    if isinstance(value, (list, tuple, dict)) and not value:
        return [f"{pad}{key}: {'[]' if isinstance(value, (list, tuple)) else '{}'}"]
    if level >= 2 and (is_model(value) or isinstance(value, dict)) and is_flat(value):
        return [f"{pad}{key}: {record_line(value)}"]  # a small record of scalars: one line
    count = f" ({len(value)})" if isinstance(value, (list, tuple, dict)) else ""
    return [f"{pad}{key}{count}:"] + node_text(value, path, level + 1)


def is_flat(value: Any) -> bool:
    data = plain(value)
    return isinstance(data, dict) and all(
        is_scalar(v) or (isinstance(v, list) and all(is_scalar(x) for x in v)) for v in data.values())


def table_text(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
