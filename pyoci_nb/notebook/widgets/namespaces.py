"""The namespaces tab's binding: one toggle (+ optional path to join) per namespace type."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from pyoci_nb.notebook.reprs.namespaces import NAMESPACE_FILES
from pyoci_nb.notebook.widgets.bindings import Binding, get_path, set_path

#: Namespace types of config-linux.md, in the order the form shows them.
NAMESPACE_TYPES = tuple(NAMESPACE_FILES)


class NamespacesBinding(Binding):
    """One toggle (+ optional path to join) per namespace type."""

    def __init__(self, toggles: dict[str, widgets.Checkbox], paths: dict[str, widgets.Text], container):
        super().__init__("linux.namespaces", container)
        self.toggles = toggles
        self.path_boxes = paths
        self._original: list = []

    def _read_widget(self) -> Any:
        return tuple((t, self.toggles[t].value, self.path_boxes[t].value.strip()) for t in NAMESPACE_TYPES)

    def _fill(self, data: dict) -> None:
        namespaces = get_path(data, ("linux", "namespaces"), []) or []
        self._original = [dict(ns) for ns in namespaces if isinstance(ns, dict)]
        by_type = {ns.get("type"): ns for ns in self._original}
        for ns_type in NAMESPACE_TYPES:
            self.toggles[ns_type].value = ns_type in by_type
            self.path_boxes[ns_type].value = str((by_type.get(ns_type) or {}).get("path") or "")

    def _store(self, data: dict) -> None:
        wanted = {t: self.path_boxes[t].value.strip() for t in NAMESPACE_TYPES if self.toggles[t].value}
        result = []
        for ns in self._original:  # keep order and unknown keys of those that stay
            ns_type = ns.get("type")
            if ns_type in wanted:
                entry = dict(ns)
                if wanted[ns_type]:
                    entry["path"] = wanted[ns_type]
                else:
                    entry.pop("path", None)
                result.append(entry)
            elif ns_type not in NAMESPACE_TYPES:
                result.append(ns)
        present = {ns.get("type") for ns in result}
        for ns_type, path in wanted.items():
            if ns_type not in present:
                result.append({"type": ns_type, "path": path} if path else {"type": ns_type})
        set_path(data, ("linux", "namespaces"), result if result or self._original else None)
