"""Which renderer draws an object: dispatch on its class (``functools.singledispatch``).

Each family module registers its renderers with its classes (``register(Spec, html=..., text=...)``),
so only those classes -- and their subclasses -- get them; anything else gets the generic
renderers (models, dataclasses, dicts and lists by duck typing, else an escaped ``repr``).

A family module imports the module that defines its classes, which may be costly (pydantic for
the spec models).  So it is imported only once that module is loaded (``FAMILIES``): an object
of those classes cannot exist before.  Rendering a ``subprocess.CompletedProcess`` never
imports pydantic.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.blocks import fields_table, header
from pyoci_nb.notebook.reprs.common import (
    MAX_STRING,
    MAX_TEXT_LINES,
    bound_lines,
    cut,
    esc,
    exception_text,
    failure_html,
    plural,
    type_name,
    wrap,
)
from pyoci_nb.notebook.reprs.paths import path_of
from pyoci_nb.notebook.reprs.tree_html import node_html
from pyoci_nb.notebook.reprs.tree_text import keyed_text, node_text
from pyoci_nb.notebook.reprs.values import is_model, model_items

#: family module (in this package) -> the module defining the classes it registers.
FAMILIES: dict[str, str] = {
    "spec": "pyoci_nb.spec.models",
    "validation": "pyoci_nb.spec.problems",
    "diff": "pyoci_nb.spec.diff",
    "result": "subprocess",
    "container": "pyoci_nb.runtime.container",
    "bundle": "pyoci_nb.bundle",
    "probe": "pyoci_nb.notebook.probe",
}
_loaded: set[str] = set()


def load_families() -> None:
    """Import the family modules whose classes' module is loaded (each once)."""
    for family, source in FAMILIES.items():
        if family not in _loaded and source in sys.modules:
            __import__(f"{__package__}.{family}")
            _loaded.add(family)


def generic_html(obj: Any) -> str:
    if is_model(obj):
        path = path_of(obj)
        items = model_items(obj)
        facts = [("", path)] if path and path != type_name(obj).lower() else []
        facts.append(("", plural(len(items), "field")))
        hover = glossary.explain(path) if path else ""
        return header(type_name(obj), facts, hover=hover) + node_html(obj, path, 0)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        rows = [(f.name, "", node_html(getattr(obj, f.name), f.name, 1), "")
                for f in dataclasses.fields(obj)]
        return header(type_name(obj), []) + fields_table(rows)
    if isinstance(obj, (dict, list, tuple)):
        return header(type_name(obj), [("", plural(len(obj), "item"))]) + node_html(obj, "", 0)
    return f'<pre class="pyoci-pre">{esc(cut(repr(obj), 4 * MAX_STRING))}</pre>'


def generic_text(obj: Any) -> str:
    if is_model(obj):
        path = path_of(obj)
        head = f"{type_name(obj)}" + (f" ({path})" if path and path != type_name(obj).lower() else "")
        return "\n".join([head] + node_text(obj, path, 1))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        lines = [type_name(obj)]
        for f in dataclasses.fields(obj):
            lines.extend(keyed_text(f.name, getattr(obj, f.name), f.name, 1))
        return "\n".join(lines)
    return cut(repr(obj), 4 * MAX_STRING)


_html_body = functools.singledispatch(generic_html)
_text_body = functools.singledispatch(generic_text)


def register(*classes: type, html: Callable[[Any], str] | None = None,
             text: Callable[[Any], str] | None = None) -> None:
    """Use ``html(obj) -> str`` (the body, without the wrapper and stylesheet) and
    ``text(obj) -> str`` for instances of ``classes`` and their subclasses."""
    for cls in classes:
        if html is not None:
            _html_body.register(cls, html)
        if text is not None:
            _text_body.register(cls, text)


def html_body(obj: Any) -> str:
    """The HTML body of ``obj`` from the renderer registered for its class (may raise)."""
    load_families()
    return _html_body(obj)


def text_body(obj: Any) -> str:
    """The text of ``obj`` from the renderer registered for its class (may raise)."""
    load_families()
    return _text_body(obj)


def html_repr(obj: Any) -> str:
    """The HTML repr of ``obj`` (a ``<div class="pyoci-repr">`` with its stylesheet); never raises."""
    try:
        body = html_body(obj)
    except Exception as exc:  # a repr must never raise
        body = failure_html(obj, exc)
    return wrap(body)


def text_repr(obj: Any) -> str:
    """The plain-text repr of ``obj``: at most ``MAX_TEXT_LINES`` lines; never raises."""
    try:
        text = text_body(obj)
    except Exception as exc:  # a repr must never raise
        return f"<{type_name(obj)}: repr failed: {exception_text(exc)}>"
    return bound_lines(text, MAX_TEXT_LINES)
