"""A part of a form bound to a place in config.json (``Binding``), a single value
(``ValueBinding``) and an editable list of records (``RowsBinding``), plus the dict-path helpers
they write with."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from pyoci_nb.notebook.widgets.common import messages_html
from pyoci_nb.notebook.widgets.parsing import FieldError

MISSING = object()


def get_path(data: dict, path: tuple[str, ...], default: Any = None) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_path(data: dict, path: tuple[str, ...], value: Any) -> None:
    """Set ``data[path]``; ``MISSING``/None removes the key and then any parent left empty
    by the removal (parents that were already empty are kept)."""
    if value is None or value is MISSING:
        chain = [data]
        for key in path[:-1]:
            node = chain[-1].get(key) if isinstance(chain[-1], dict) else None
            if not isinstance(node, dict):
                return
            chain.append(node)
        chain[-1].pop(path[-1], None)
        for depth in range(len(path) - 1, 0, -1):
            if chain[depth]:
                break
            chain[depth - 1].pop(path[depth - 1], None)
        return
    node = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


class Binding:
    """One part of the form bound to a place in config.json.

    ``load(data)`` fills the widgets from the config; ``changed()`` tells whether the user
    changed them since; ``write(data)`` puts their value into the config (raising
    ``FieldError`` for input that cannot be converted).  ``message`` is the HTML widget beside
    the field where validation messages appear; ``paths`` are the JSON path prefixes whose
    problems are shown there."""

    def __init__(self, path: str, widget: widgets.Widget, *, paths: tuple[str, ...] = ()):
        self.path = path
        self.widget = widget
        self.paths = paths or (path,)
        self.message = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))
        self._loaded: Any = MISSING

    # subclasses define: _read_widget() -> comparable snapshot, _fill(data), _store(data)
    def load(self, data: dict) -> None:
        """Fill the widgets from config ``data`` and take their values as the baseline."""
        self._fill(data)
        self._loaded = self._read_widget()

    def accept(self) -> None:
        """The model took the form's values: they are the new baseline."""
        self._loaded = self._read_widget()

    def changed(self) -> bool:
        """True when the user changed the widgets since ``load``/``accept``."""
        return self._read_widget() != self._loaded

    def write(self, data: dict) -> None:
        """Put the widgets' value into config ``data`` when changed (``FieldError`` if invalid)."""
        if self.changed():
            self._store(data)

    def show(self, messages: list[str]) -> None:
        """Show ``messages`` (validation problems) beside the field; none clears it."""
        self.message.value = messages_html(messages)

    def _read_widget(self) -> Any:
        return self.widget.value

    def _fill(self, data: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _store(self, data: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ValueBinding(Binding):
    """A single widget at a JSON path, with ``to_text``/``parse`` converting both ways."""

    def __init__(self, path: str, widget: widgets.Widget, *, to_widget: Callable[[Any], Any] = lambda v: v,
                 parse: Callable[[Any], Any] = lambda v: v, empty: Any = ""):
        super().__init__(path, widget)
        self.key = tuple(path.split("."))
        self.to_widget = to_widget
        self.parse = parse
        self.empty = empty

    def _fill(self, data: dict) -> None:
        value = get_path(data, self.key, MISSING)
        self.widget.value = self.empty if value is MISSING or value is None else self.to_widget(value)

    def _store(self, data: dict) -> None:
        try:
            value = self.parse(self.widget.value)
        except FieldError as exc:
            raise FieldError(f"{self.path}: {exc}") from None
        set_path(data, self.key, value)


class RowsBinding(Binding):
    """An editable list of records (mounts, rlimits): one row of widgets per entry, with add
    and remove buttons.  Each row keeps the entry it was loaded from, so keys the row does not
    show (e.g. a mount's uidMappings) are kept."""

    def __init__(self, path: str, columns: list[tuple[str, Callable[[], widgets.Widget], Callable[[Any], Any],
                                                  Callable[[Any], Any]]],
                 on_rows_changed: Callable[[], None], *, header: list[tuple[str, str]], new_entry: dict):
        self.columns = columns  # (key, make_widget, to_widget, parse)
        self.rows_box = widgets.VBox()
        self.rows: list[tuple[dict, list[widgets.Widget], widgets.HBox]] = []
        self.on_rows_changed = on_rows_changed
        self.new_entry = new_entry
        self.add_button = widgets.Button(description="add", icon="plus", layout=widgets.Layout(width="80px"),
                                         tooltip=f"add an entry to {path}")
        self.add_button.on_click(lambda _: self.add_row(dict(new_entry), notify=True))
        head = widgets.HBox([widgets.HTML(f"<b>{html.escape(label)}</b>", layout=widgets.Layout(width=width))
                             for label, width in header])
        container = widgets.VBox([head, self.rows_box, self.add_button])
        super().__init__(path, container)
        self.key = tuple(path.split("."))

    def add_row(self, entry: dict, *, notify: bool = False) -> None:
        """Append a row for ``entry``; ``notify`` applies the form (the add button does)."""
        cells = []
        for key, make, to_widget, _ in self.columns:
            cell = make()
            value = entry.get(key)
            if value is not None:
                cell.value = to_widget(value)
            cell.observe(lambda _c: self.on_rows_changed(), names="value")
            cells.append(cell)
        remove = widgets.Button(icon="trash", tooltip="remove this entry", layout=widgets.Layout(width="40px"))
        row = widgets.HBox(cells + [remove])
        record = (entry, cells, row)
        remove.on_click(lambda _b: self.remove_row(record))
        self.rows.append(record)
        self.rows_box.children = [r for _, _, r in self.rows]
        if notify:
            self.on_rows_changed()

    def remove_row(self, record) -> None:
        """Remove a row (its trash button) and apply the form."""
        self.rows = [r for r in self.rows if r is not record]
        self.rows_box.children = [r for _, _, r in self.rows]
        self.on_rows_changed()

    def _read_widget(self) -> Any:
        return tuple((id(entry), tuple(_freeze(c.value) for c in cells)) for entry, cells, _ in self.rows)

    def _fill(self, data: dict) -> None:
        self.rows = []
        self.rows_box.children = []
        for entry in get_path(data, self.key, []) or []:
            self.add_row(dict(entry) if isinstance(entry, dict) else {})

    def _store(self, data: dict) -> None:
        result = []
        for index, (entry, cells, _) in enumerate(self.rows):
            item = dict(entry)
            for (key, _, _, parse), cell in zip(self.columns, cells, strict=True):
                try:
                    value = parse(cell.value)
                except FieldError as exc:
                    raise FieldError(f"{self.path}[{index}].{key}: {exc}") from None
                if value is None:
                    item.pop(key, None)
                else:
                    item[key] = value
            result.append(item)
        set_path(data, self.key, result)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
