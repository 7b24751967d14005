"""The capabilities tab's model side: presets and the grid's binding (one checkbox per
capability and set)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from pyoci_nb.notebook.widgets.bindings import Binding, get_path, set_path
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_SETS

#: Capability presets of the capabilities tab: name -> {set: capabilities}.
_RUNC_DEFAULT = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


#: Docker's default capabilities (moby's oci/caps/defaults.go).
_DOCKER_DEFAULT = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                   "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                   "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")


CAPABILITY_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "runc default": {s: _RUNC_DEFAULT for s in ("bounding", "effective", "permitted", "ambient")},
    "docker default": {s: _DOCKER_DEFAULT for s in ("bounding", "effective", "permitted")},
    "none": {},
    "all (privileged)": {s: ALL_CAPABILITIES for s in ("bounding", "effective", "permitted")},
}


class CapabilitiesBinding(Binding):
    """The capability grid: one checkbox per (capability, set).  Writing keeps the order of the
    capabilities already listed and appends new ones in kernel order; a set that was absent
    and is left empty stays absent."""

    def __init__(self, boxes: dict[tuple[str, str], widgets.Checkbox], container: widgets.Widget):
        super().__init__("process.capabilities", container)
        self.boxes = boxes
        self._original: dict = {}

    def _read_widget(self) -> Any:
        return tuple(sorted(key for key, box in self.boxes.items() if box.value))

    def _fill(self, data: dict) -> None:
        caps = get_path(data, ("process", "capabilities"), {}) or {}
        self._original = {s: list(caps[s]) for s in CAPABILITY_SETS if isinstance(caps.get(s), list)}
        for (cap, cap_set), box in self.boxes.items():
            box.value = cap in (caps.get(cap_set) or [])

    def _store(self, data: dict) -> None:
        result = dict(get_path(data, ("process", "capabilities"), {}) or {})
        for cap_set in CAPABILITY_SETS:
            checked = {cap for (cap, s), box in self.boxes.items() if s == cap_set and box.value}
            before = self._original.get(cap_set)
            if before is None and not checked:
                result.pop(cap_set, None)
                continue
            kept = [c for c in (before or []) if c in checked]
            result[cap_set] = kept + [c for c in ALL_CAPABILITIES if c in checked and c not in kept]
        set_path(data, ("process", "capabilities"), result if result or self._original else None)
