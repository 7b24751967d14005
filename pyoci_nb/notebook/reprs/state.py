"""A container's state (runtime.md): the lifecycle picture with the status lit, then the fields.
Pure functions over a ``State`` model or the state dict (``spec.py`` registers them for
``State``; ``container.py`` uses ``state_rows`` without importing pydantic)."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import glossary, svg
from pyoci_nb.notebook.reprs.blocks import fields_table, header, section
from pyoci_nb.notebook.reprs.common import type_name
from pyoci_nb.notebook.reprs.tree_html import dict_html, model_html, node_html
from pyoci_nb.notebook.reprs.tree_text import node_text
from pyoci_nb.notebook.reprs.values import is_model, join_path, plain


def state_html(state: Any) -> str:
    """The state (runtime.md): lifecycle picture with the status lit, then the fields."""
    data = plain(state)
    facts = [("", data.get("id")), ("status", data.get("status")), ("pid", data.get("pid")),
             ("bundle", data.get("bundle"))]
    rows = state_rows(state, data)
    return (header(type_name(state), facts, hover="the state of a container (runtime-spec runtime.md)")
            + svg.lifecycle_svg(data.get("status")) + rows)


def state_rows(state: Any, data: dict) -> str:
    if is_model(state):
        return model_html(state, "state", 0)
    rows, sections = [], []
    for key, value in data.items():
        path = join_path("state", key)
        if isinstance(value, dict) and value:
            sections.append(section(key, dict_html(value, path, 1), count=str(len(value)),
                                     explanation=glossary.explain(path), open_=False))
        else:
            rows.append((key, glossary.explain(path), node_html(value, path, 1), glossary.explain(path)))
    return fields_table(rows) + "".join(sections)


def state_text(state: Any) -> str:
    """The state as text: id and status, then the fields."""
    data = plain(state)
    head = f"{type_name(state)}: {data.get('id')} {data.get('status')}"
    return "\n".join([head] + node_text(data, "state", 1))
