"""The seccomp tab's binding: the default profile on or off."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from pyoci_nb.notebook.widgets.bindings import Binding, get_path, set_path
from pyoci_nb.runtime.seccomp import default_profile


class SeccompBinding(Binding):
    """The default seccomp profile on/off.  Turning it on installs
    ``pyoci_nb.runtime.seccomp.default_profile()`` (resolved against the bounding set);
    turning it off removes ``linux.seccomp``; a custom profile is kept until unticked."""

    def __init__(self, checkbox: widgets.Checkbox, note: widgets.HTML):
        super().__init__("linux.seccomp", checkbox)
        self.note = note

    def _fill(self, data: dict) -> None:
        seccomp = get_path(data, ("linux", "seccomp"))
        self.widget.value = isinstance(seccomp, dict)
        self._describe(seccomp)

    def _describe(self, seccomp: Any) -> None:
        if isinstance(seccomp, dict):
            rules = seccomp.get("syscalls") or []
            self.note.value = (f'<span class="pyoci-explain" style="font-size:12px">'
                               f'default action {html.escape(str(seccomp.get("defaultAction")))}, '
                               f'{len(rules)} rules</span>')
        else:
            self.note.value = '<span style="font-size:12px">no filter: every system call is allowed</span>'

    def _store(self, data: dict) -> None:
        if not self.widget.value:
            set_path(data, ("linux", "seccomp"), None)
            return
        bounding = get_path(data, ("process", "capabilities", "bounding"), []) or []
        set_path(data, ("linux", "seccomp"), default_profile(capabilities=bounding))
