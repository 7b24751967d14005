"""ipywidgets 8 editors: ``SpecEditor``, ``BundleBrowser`` and ``ContainerPanel``.

``SpecEditor(spec=None)`` is a form over the runtime-spec model.  It is two-way: editing a field
rebuilds the config and validates it with the pydantic ``Spec`` model; when the result is valid
``editor.spec`` (a traitlet holding a ``Spec``) is replaced and the JSON preview and the diff
against ``default_spec()`` follow; when it is not, the rule broken is shown beside the field
(with its JSON path) and ``editor.spec`` keeps its last valid value.  Assigning ``editor.spec``
(a ``Spec`` or a config ``dict``) fills the form.  Only fields the user changed are written, so
loading a spec and touching nothing never alters it (unknown properties, list order and
sections the form does not show are kept).

``BundleBrowser(bundle)`` shows a bundle's root filesystem (listed lazily, one directory at a
time, truncated; symlinks are shown, never followed), its config and its validation report.

``ContainerPanel(container)`` shows a container's state (lifecycle and namespaces pictures),
its processes, and start / kill / delete / refresh buttons.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import stat
import threading
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from pyoci_nb.errors import ConfigError, PyociError
from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs import as_report, html_repr, stylesheet
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_SETS

#: Namespace types of config-linux.md, in the order the form shows them.
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

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

RLIM_INFINITY = 2**64 - 1
_MISSING = object()


class FieldError(ValueError):
    """A form value that cannot become JSON (e.g. "abc" for a number); the message says why."""


# ============================================================================ value parsing
def parse_int(text: str, *, minimum: int | None = None, allow_unlimited: bool = False) -> int | None:
    """``"1024"`` -> 1024, ``""`` -> None; ``"unlimited"`` -> 2**64-1 when allowed."""
    text = text.strip()
    if not text:
        return None
    if allow_unlimited and text.lower() in ("unlimited", "infinity"):
        return RLIM_INFINITY
    try:
        value = int(text, 0)
    except ValueError:
        raise FieldError(f"not an integer: {text!r}") from None
    if minimum is not None and value < minimum:
        raise FieldError(f"must be >= {minimum}, got {value}")
    return value


def parse_size(text: str) -> int | None:
    """A size in bytes: ``"1073741824"``, ``"512m"``, ``"1g"``, ``"64KiB"`` (powers of 1024, the
    parser of ``pyoci update --memory``); ``"-1"`` means no limit; ``""`` -> None."""
    from pyoci_nb.errors import ConfigError
    from pyoci_nb.runtime.cgroups.commands import parse_size as parse_runc_size

    if not text.strip():
        return None
    try:
        return parse_runc_size(text, "size", allow_unlimited=True)
    except ConfigError:
        raise FieldError(f"not a size: {text!r} (use bytes or a k/m/g/t suffix, e.g. 512m)") from None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# ============================================================================ dict paths
def _get(data: dict, path: tuple[str, ...], default: Any = None) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _set(data: dict, path: tuple[str, ...], value: Any) -> None:
    """Set ``data[path]``; ``_MISSING``/None removes the key and then any parent left empty
    by the removal (parents that were already empty are kept)."""
    if value is None or value is _MISSING:
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


def _json_path(path: tuple[str, ...]) -> str:
    return ".".join(path)


# ============================================================================ bindings
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
        self._loaded: Any = _MISSING

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
        if messages:
            items = "".join(f"<div>&#9888; {html.escape(m)}</div>" for m in messages)
            self.message.value = f'<div style="color:var(--jp-error-color1,#cf222e);font-size:12px">{items}</div>'
        else:
            self.message.value = ""

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
        value = _get(data, self.key, _MISSING)
        self.widget.value = self.empty if value is _MISSING or value is None else self.to_widget(value)

    def _store(self, data: dict) -> None:
        try:
            value = self.parse(self.widget.value)
        except FieldError as exc:
            raise FieldError(f"{self.path}: {exc}") from None
        _set(data, self.key, value)


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
        caps = _get(data, ("process", "capabilities"), {}) or {}
        self._original = {s: list(caps[s]) for s in CAPABILITY_SETS if isinstance(caps.get(s), list)}
        for (cap, cap_set), box in self.boxes.items():
            box.value = cap in (caps.get(cap_set) or [])

    def _store(self, data: dict) -> None:
        result = dict(_get(data, ("process", "capabilities"), {}) or {})
        for cap_set in CAPABILITY_SETS:
            checked = {cap for (cap, s), box in self.boxes.items() if s == cap_set and box.value}
            before = self._original.get(cap_set)
            if before is None and not checked:
                result.pop(cap_set, None)
                continue
            kept = [c for c in (before or []) if c in checked]
            result[cap_set] = kept + [c for c in ALL_CAPABILITIES if c in checked and c not in kept]
        _set(data, ("process", "capabilities"), result if result or self._original else None)


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
        namespaces = _get(data, ("linux", "namespaces"), []) or []
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
        _set(data, ("linux", "namespaces"), result if result or self._original else None)


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
        for entry in _get(data, self.key, []) or []:
            self.add_row(dict(entry) if isinstance(entry, dict) else {})

    def _store(self, data: dict) -> None:
        result = []
        for index, (entry, cells, _) in enumerate(self.rows):
            item = dict(entry)
            for (key, _, _, parse), cell in zip(self.columns, cells):
                try:
                    value = parse(cell.value)
                except FieldError as exc:
                    raise FieldError(f"{self.path}[{index}].{key}: {exc}") from None
                if value is None:
                    item.pop(key, None)
                else:
                    item[key] = value
            result.append(item)
        _set(data, self.key, result)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class SeccompBinding(Binding):
    """The default seccomp profile on/off.  Turning it on installs
    ``pyoci_nb.runtime.seccomp.default_profile()`` (resolved against the bounding set);
    turning it off removes ``linux.seccomp``; a custom profile is kept until unticked."""

    def __init__(self, checkbox: widgets.Checkbox, note: widgets.HTML):
        super().__init__("linux.seccomp", checkbox)
        self.note = note

    def _fill(self, data: dict) -> None:
        seccomp = _get(data, ("linux", "seccomp"))
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
            _set(data, ("linux", "seccomp"), None)
            return
        try:
            from pyoci_nb.runtime.seccomp import default_profile
        except ImportError as exc:  # the runtime's seccomp module is part of this package
            raise FieldError(f"linux.seccomp: the default profile is unavailable: {exc}") from None
        bounding = _get(data, ("process", "capabilities", "bounding"), []) or []
        _set(data, ("linux", "seccomp"), default_profile(capabilities=bounding))


# ============================================================================ SpecEditor
def _label(path: str, text: str | None = None) -> widgets.HTML:
    """The name of a field, with the plain-words explanation as its tooltip."""
    explanation = glossary.explain(path)
    title = f' title="{html.escape(explanation)}"' if explanation else ""
    name = html.escape(text or path.rsplit(".", 1)[-1])
    return widgets.HTML(f'<span{title} style="font-family:monospace">{name}</span>',
                        layout=widgets.Layout(width="150px", min_width="150px"))


def _text(placeholder: str = "", width: str = "360px") -> widgets.Text:
    return widgets.Text(placeholder=placeholder, continuous_update=False, layout=widgets.Layout(width=width))


class _SpecTrait(traitlets.Any):
    """A trait that notifies on every assignment of a different object, even an equal one:
    assigning a spec equal to the current one must still refill the form (and clear the
    messages of rejected edits)."""

    def set(self, obj, value):
        new_value = self._validate(obj, value)
        old_value = obj._trait_values.get(self.name, self.default_value)
        obj._trait_values[self.name] = new_value
        if new_value is not old_value:
            obj._notify_trait(self.name, old_value, new_value)


class SpecEditor(widgets.VBox):
    """A form over a runtime-spec ``Spec`` (config.json), two-way.

    ``editor.spec`` is always a valid ``Spec``: form edits that produce a valid config replace
    it (observe it with ``editor.observe(callback, names="spec")``), invalid ones show the
    rule broken beside the field and leave it unchanged.  Assigning a ``Spec`` or a config
    ``dict`` to ``editor.spec`` refills the form.

    ``editor.fields`` maps a JSON path (``process.cwd``, ``linux.resources.memory.limit`` ...)
    to its input widget; ``editor.bindings`` to the binding with its ``message`` widget;
    ``editor.json_preview`` shows ``spec.to_json()``; ``editor.diff_view`` the diff against
    ``default_spec()``; ``editor.problems`` lists the current problems (empty when valid).
    """

    spec = _SpecTrait(help="the edited Spec (always valid)")

    def __init__(self, spec: Any = None, **kwargs):
        from pyoci_nb.spec import default_spec

        self._loading = False
        self._applying = False
        self.fields: dict[str, widgets.Widget] = {}
        self.bindings: dict[str, Binding] = {}
        self.problems: list[str] = []
        self.status = widgets.HTML()
        self.json_preview = widgets.HTML()
        self.diff_view = widgets.HTML()
        tabs = [
            ("process", self._process_tab()),
            ("root/host", self._root_tab()),
            ("caps", self._capabilities_tab()),
            ("ns", self._namespaces_tab()),
            ("mounts", self._mounts_tab()),
            ("rlimits", self._rlimits_tab()),
            ("paths", self._paths_tab()),
            ("resources", self._resources_tab()),
            ("seccomp", self._seccomp_tab()),
            ("JSON", widgets.VBox([self.json_preview])),
            ("diff", widgets.VBox([self.diff_view])),
        ]
        self.tabs = widgets.Tab(children=[t for _, t in tabs], titles=[n for n, _ in tabs])
        super().__init__(children=[self.status, self.tabs], **kwargs)
        self.add_class("pyoci-spec-editor")
        self.spec = default_spec() if spec is None else spec

    # ------------------------------------------------------------------ the model side
    @traitlets.validate("spec")
    def _validate_spec(self, proposal):
        from pyoci_nb.spec import Spec, load_spec

        value = proposal["value"]
        if isinstance(value, Spec):
            return value
        if isinstance(value, (dict, str, os.PathLike)):
            try:
                return load_spec(value)
            except ConfigError as exc:
                raise traitlets.TraitError(f"SpecEditor.spec: {exc}") from None
        raise traitlets.TraitError(f"SpecEditor.spec must be a Spec or a config dict, not {type(value).__name__}")

    @traitlets.observe("spec")
    def _spec_changed(self, change):
        if not self._applying:  # set from outside: refill the form
            self._load_form(change["new"])
        self._refresh_previews()

    def _load_form(self, spec) -> None:
        data = spec.to_dict()
        self._loading = True
        try:
            for binding in self.bindings.values():
                binding.load(data)
                binding.show([])
        finally:
            self._loading = False
        self.problems = []
        self._show_status()

    def _refresh_previews(self) -> None:
        spec = self.spec
        self.json_preview.value = (
            '<pre style="font-size:12px;max-height:32em;overflow:auto;margin:0">'
            f"{html.escape(spec.to_json(indent=2))}</pre>")
        self.diff_view.value = html_repr(spec.diff())

    def _show_status(self) -> None:
        if self.problems:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in self.problems[:20])
            more = f"<li>... {len(self.problems) - 20} more</li>" if len(self.problems) > 20 else ""
            self.status.value = (f'<div style="color:var(--jp-error-color1,#cf222e)"><b>not applied</b> '
                                 f'(editor.spec keeps its last valid value):<ul style="margin:0">{items}{more}</ul></div>')
        else:
            self.status.value = ('<div style="color:var(--jp-success-color1,#1a7f37)">&#10003; valid: '
                                 'editor.spec is up to date</div>')

    # ------------------------------------------------------------------ the form side
    def _bind(self, binding: Binding, *watch: widgets.Widget) -> Binding:
        self.bindings[binding.path] = binding
        for widget in watch or (binding.widget,):
            widget.observe(self._form_changed, names="value")
        return binding

    def _form_changed(self, _change=None) -> None:
        if self._loading:
            return
        self.apply()

    def apply(self) -> bool:
        """Rebuild the config from the form and validate it; True when ``editor.spec`` was
        updated.  Called on every change of a field; call it yourself after scripted edits."""
        from pyoci_nb.spec import Spec

        data = self.spec.to_dict()
        messages: dict[str, list[str]] = {}
        unplaced: list[str] = []
        for binding in self.bindings.values():
            try:
                binding.write(data)
            except FieldError as exc:
                messages.setdefault(binding.path, []).append(str(exc))
        if not messages:
            try:
                new_spec = Spec.model_validate(data)
            except ConfigError as exc:
                problems = getattr(exc, "problems", None) or []
                if not problems:
                    unplaced.append(str(exc))
                for problem in problems:
                    target = self._binding_for(problem.path)
                    text = str(problem)
                    if target is None:
                        unplaced.append(text)
                    else:
                        messages.setdefault(target.path, []).append(text)
            else:
                for binding in self.bindings.values():
                    binding.show([])
                    binding.accept()
                self.problems = []
                self._applying = True
                try:
                    self.spec = new_spec
                finally:
                    self._applying = False
                self._show_status()
                return True
        for binding in self.bindings.values():
            binding.show(messages.get(binding.path, []))
        self.problems = [m for ms in messages.values() for m in ms] + unplaced
        self._show_status()
        return False

    def _binding_for(self, path: str) -> Binding | None:
        """The binding whose JSON path is the longest prefix of ``path``."""
        best, best_len = None, -1
        for binding in self.bindings.values():
            for prefix in binding.paths:
                if (path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")) \
                        and len(prefix) > best_len:
                    best, best_len = binding, len(prefix)
        return best

    def _row(self, path: str, widget: widgets.Widget, binding: Binding, label: str | None = None) -> widgets.Widget:
        self.fields[path] = widget
        self._bind(binding)
        return widgets.HBox([_label(path, label), widget, binding.message],
                            layout=widgets.Layout(align_items="center"))

    def _value_row(self, path: str, widget: widgets.Widget, label: str | None = None, **convert) -> widgets.Widget:
        return self._row(path, widget, ValueBinding(path, widget, **convert), label)

    # ------------------------------------------------------------------ tabs
    def _process_tab(self) -> widgets.Widget:
        args = _text("program and arguments, shell words: sh -c 'echo hi'", "480px")
        env = widgets.Textarea(placeholder="KEY=value, one a line", continuous_update=False,
                               layout=widgets.Layout(width="480px", height="90px"))
        return widgets.VBox([
            self._value_row("process.args", args, to_widget=shlex.join, parse=_parse_args),
            self._value_row("process.env", env, to_widget="\n".join, parse=lambda t: _lines(t) or None),
            self._value_row("process.cwd", _text("/"), parse=lambda t: t or None),
            self._value_row("process.user.uid", _text("0", "120px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0)),
            self._value_row("process.user.gid", _text("0", "120px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0)),
            self._value_row("process.user.additionalGids", _text("e.g. 10, 20", "240px"),
                            to_widget=lambda v: ", ".join(str(g) for g in v), parse=_parse_int_list),
            self._value_row("process.user.umask", _text("e.g. 0o022", "120px"), to_widget=lambda v: oct(v),
                            parse=lambda t: parse_int(t, minimum=0)),
            self._value_row("process.terminal", widgets.Checkbox(indent=False), empty=False,
                            parse=lambda v: v),
            self._value_row("process.noNewPrivileges", widgets.Checkbox(indent=False), empty=False,
                            parse=lambda v: v),
        ])

    def _root_tab(self) -> widgets.Widget:
        return widgets.VBox([
            self._value_row("root.path", _text("rootfs"), parse=lambda t: t or None),
            self._value_row("root.readonly", widgets.Checkbox(indent=False), empty=False, parse=lambda v: v),
            self._value_row("hostname", _text("e.g. box"), parse=lambda t: t or None),
            self._value_row("domainname", _text(""), parse=lambda t: t or None),
        ])

    def _capabilities_tab(self) -> widgets.Widget:
        boxes: dict[tuple[str, str], widgets.Checkbox] = {}
        cells: list[widgets.Widget] = [widgets.HTML("<b>capability</b>")]
        for cap_set in CAPABILITY_SETS:
            explanation = glossary.explain(f"process.capabilities.{cap_set}")
            cells.append(widgets.HTML(f'<b title="{html.escape(explanation)}">{cap_set}</b>'))
        # 205 checkboxes: one Layout and one style shared by all keeps the form quick to build
        box_layout = widgets.Layout(width="auto", height="22px")
        box_style = CheckboxStyle()
        name_layout = widgets.Layout(height="22px")
        name_style = HTMLStyle()
        for cap in ALL_CAPABILITIES:
            cells.append(widgets.HTML(f'<span style="font-family:monospace;font-size:12px">{cap}</span>',
                                      layout=name_layout, style=name_style))
            for cap_set in CAPABILITY_SETS:
                box = widgets.Checkbox(indent=False, layout=box_layout, style=box_style,
                                       tooltip=f"{cap} in the {cap_set} set")
                boxes[(cap, cap_set)] = box
                cells.append(box)
        grid = widgets.GridBox(cells, layout=widgets.Layout(
            grid_template_columns="230px repeat(5, 90px)", grid_gap="0 4px", max_height="420px",
            overflow="auto"))
        binding = CapabilitiesBinding(boxes, grid)
        self.bindings[binding.path] = binding
        self.fields[binding.path] = grid
        self.capability_boxes = boxes
        for box in boxes.values():
            box.observe(self._form_changed, names="value")
        presets = widgets.ToggleButtons(options=list(CAPABILITY_PRESETS), value=None,
                                        description="preset", tooltips=[
                                            "AUDIT_WRITE, KILL, NET_BIND_SERVICE (what runc spec writes)",
                                            "Docker's 14 default capabilities",
                                            "no capability in any set",
                                            "every capability (like --privileged)"])
        presets.observe(lambda change: self.use_capability_preset(change["new"]) if change["new"] else None,
                        names="value")
        self.capability_presets = presets
        legend = widgets.HTML("<br>".join(
            f'<span style="font-size:12px"><b>{s}</b>: {html.escape(glossary.explain("process.capabilities." + s))}</span>'
            for s in CAPABILITY_SETS))
        return widgets.VBox([widgets.HBox([presets, binding.message]), legend, grid])

    def use_capability_preset(self, name: str) -> None:
        """Tick the capabilities of preset ``name`` (see ``CAPABILITY_PRESETS``), then apply once."""
        preset = CAPABILITY_PRESETS[name]
        self._loading = True
        try:
            for (cap, cap_set), box in self.capability_boxes.items():
                box.value = cap in preset.get(cap_set, ())
        finally:
            self._loading = False
        self.apply()
        self.capability_presets.value = None

    def _namespaces_tab(self) -> widgets.Widget:
        toggles, paths, rows = {}, {}, []
        for ns_type in NAMESPACE_TYPES:
            toggles[ns_type] = widgets.Checkbox(indent=False, description=ns_type,
                                                layout=widgets.Layout(width="120px"))
            paths[ns_type] = _text("path to join (empty: a new namespace)", "340px")
            rows.append(widgets.HBox([toggles[ns_type], paths[ns_type]]))
            self.fields[f"linux.namespaces.{ns_type}"] = toggles[ns_type]
            self.fields[f"linux.namespaces.{ns_type}.path"] = paths[ns_type]
        container = widgets.VBox(rows)
        binding = NamespacesBinding(toggles, paths, container)
        self._bind(binding, *toggles.values(), *paths.values())
        note = widgets.HTML(f'<span style="font-size:12px">{html.escape(glossary.explain("linux.namespaces"))}</span>')
        return widgets.VBox([note, container, binding.message])

    def _mounts_tab(self) -> widgets.Widget:
        def text(width):
            return lambda: _text("", width)

        binding = RowsBinding("mounts", [
            ("destination", text("200px"), str, lambda t: t.strip()),
            ("type", text("90px"), str, lambda t: t.strip() or None),
            ("source", text("180px"), str, lambda t: t.strip() or None),
            ("options", text("300px"), ",".join, lambda t: [o.strip() for o in t.split(",") if o.strip()] or None),
        ], self._form_changed, header=[("destination", "204px"), ("type", "94px"), ("source", "184px"),
                                           ("options (comma-separated)", "300px")],
            new_entry={"destination": "", "type": "bind", "source": "", "options": ["rbind", "ro"]})
        self.bindings[binding.path] = binding
        self.fields["mounts"] = binding.widget
        self.mount_rows = binding
        return widgets.VBox([binding.message, binding.widget])

    def _rlimits_tab(self) -> widgets.Widget:
        from pyoci_nb.spec.validation import RLIMIT_TYPES

        binding = RowsBinding("process.rlimits", [
            ("type", lambda: widgets.Dropdown(options=RLIMIT_TYPES, layout=widgets.Layout(width="200px")),
             str, str),
            ("soft", lambda: _text("", "180px"), _rlimit_text, lambda t: parse_int(t, minimum=0, allow_unlimited=True)),
            ("hard", lambda: _text("", "180px"), _rlimit_text, lambda t: parse_int(t, minimum=0, allow_unlimited=True)),
        ], self._form_changed, header=[("type", "204px"), ("soft (enforced)", "184px"), ("hard (ceiling)", "184px")],
            new_entry={"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024})
        self.bindings[binding.path] = binding
        self.fields["process.rlimits"] = binding.widget
        self.rlimit_rows = binding
        note = widgets.HTML(f'<span style="font-size:12px">{html.escape(glossary.explain("process.rlimits"))}'
                            '; "unlimited" is accepted</span>')
        return widgets.VBox([note, binding.message, binding.widget])

    def _paths_tab(self) -> widgets.Widget:
        def area():
            return widgets.Textarea(placeholder="/absolute/path, one a line", continuous_update=False,
                                    layout=widgets.Layout(width="420px", height="150px"))

        return widgets.VBox([
            self._value_row("linux.maskedPaths", area(), to_widget="\n".join, parse=lambda t: _lines(t) or None,
                            label="maskedPaths"),
            self._value_row("linux.readonlyPaths", area(), to_widget="\n".join, parse=lambda t: _lines(t) or None,
                            label="readonlyPaths"),
        ])

    def _resources_tab(self) -> widgets.Widget:
        def size_text(value):
            return str(value)

        return widgets.VBox([
            self._value_row("linux.resources.memory.limit", _text("bytes, or 512m / 1g; -1 = no limit", "260px"),
                            to_widget=size_text, parse=parse_size, label="memory.limit"),
            self._value_row("linux.resources.cpu.shares", _text("e.g. 1024", "160px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0), label="cpu.shares"),
            self._value_row("linux.resources.cpu.quota", _text("microseconds per period", "200px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=-1), label="cpu.quota"),
            self._value_row("linux.resources.cpu.period", _text("e.g. 100000", "160px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0), label="cpu.period"),
            self._value_row("linux.resources.cpu.cpus", _text("e.g. 0-1", "160px"),
                            parse=lambda t: t.strip() or None, label="cpu.cpus"),
            self._value_row("linux.resources.pids.limit", _text("max tasks, -1 = no limit", "200px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=-1), label="pids.limit"),
        ])

    def _seccomp_tab(self) -> widgets.Widget:
        checkbox = widgets.Checkbox(indent=False, description="seccomp filter (tick: Docker-like default profile)",
                                    layout=widgets.Layout(width="420px"))
        note = widgets.HTML()
        binding = SeccompBinding(checkbox, note)
        self.fields["linux.seccomp"] = checkbox
        self._bind(binding)
        return widgets.VBox([widgets.HBox([checkbox, binding.message]), note])


def _parse_args(text: str) -> list[str] | None:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FieldError(f"cannot split into words: {exc}") from None
    return words or None


def _parse_int_list(text: str) -> list[int] | None:
    values = [parse_int(part, minimum=0) for part in re.split(r"[,\s]+", text.strip()) if part]
    return [v for v in values if v is not None] or None


def _rlimit_text(value: Any) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)


# ============================================================================ BundleBrowser
class BundleBrowser(widgets.VBox):
    """A bundle: its root filesystem (one directory listed at a time, at most
    ``max_entries`` names; symlinks shown with their target and never followed, so the
    browser never leaves the rootfs), its config.json and its validation report."""

    max_entries = 500

    def __init__(self, bundle: Any, **kwargs):
        if isinstance(bundle, (str, os.PathLike)):
            from pyoci_nb.bundle import Bundle

            bundle = Bundle(bundle)
        self.bundle = bundle
        self.rootfs: Path | None = None
        self.current = Path(".")
        self.location = widgets.HTML()
        self.listing = widgets.Select(options=[], rows=16, layout=widgets.Layout(width="520px"))
        self.info = widgets.HTML()
        self.up_button = widgets.Button(description="up", icon="arrow-up", layout=widgets.Layout(width="70px"))
        self.up_button.on_click(lambda _b: self.open_directory(self.current.parent))
        self.listing.observe(self._selected, names="value")
        self.config_view = widgets.HTML()
        self.validation_view = widgets.HTML()
        self.header = widgets.HTML()
        refresh = widgets.Button(description="refresh", icon="refresh", layout=widgets.Layout(width="100px"))
        refresh.on_click(lambda _b: self.refresh())
        rootfs_tab = widgets.VBox([widgets.HBox([self.up_button, self.location]), self.listing, self.info])
        self.tabs = widgets.Tab(children=[rootfs_tab, self.config_view, self.validation_view],
                                titles=["rootfs", "config.json", "validation"])
        super().__init__(children=[widgets.HBox([self.header, refresh]), self.tabs], **kwargs)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the config, the validation and the current directory."""
        try:
            self.config_view.value = html_repr(self.bundle.spec)
        except Exception as exc:
            self.config_view.value = _error_html(f"config.json unreadable: {exc}")
        try:
            report = as_report(self.bundle.validate(), "config.json")
            self.validation_view.value = html_repr(report)
            problems = len(getattr(report, "problems", []) or [])
            verdict = "valid" if not problems else f"{problems} problem{'s' if problems != 1 else ''}"
        except Exception as exc:
            self.validation_view.value = _error_html(f"validation failed: {exc}")
            verdict = "not validated"
        self.header.value = (f"{stylesheet()}<div class='pyoci-repr'><div class='pyoci-header'>"
                             f"<span class='pyoci-type'>Bundle</span><span class='pyoci-fact'>"
                             f"<b>{html.escape(str(getattr(self.bundle, 'path', '')))}</b></span>"
                             f"<span class='pyoci-fact'>config <b>{html.escape(verdict)}</b></span></div></div>")
        try:
            self.rootfs = Path(self.bundle.rootfs_path)
        except Exception as exc:
            self.rootfs = None
            self.listing.options = []
            self.location.value = ""
            self.info.value = _error_html(f"no root filesystem: {exc}")
            return
        self.open_directory(self.current)

    def open_directory(self, relative: Path | str) -> None:
        """List directory ``relative`` (to the rootfs); ``..`` never goes above the rootfs."""
        parts = [p for p in Path(relative).parts if p not in ("", ".", "/")]
        clean: list[str] = []
        for part in parts:
            if part == "..":
                if clean:
                    clean.pop()
            else:
                clean.append(part)
        target = Path(*clean) if clean else Path(".")
        if self.rootfs is None:
            return
        directory = self.rootfs.joinpath(*clean) if clean else self.rootfs
        try:
            if directory.is_symlink() or not directory.is_dir():
                raise NotADirectoryError(f"{target} is not a directory")
            entries = list_directory(directory, self.max_entries)
        except OSError as exc:
            self.info.value = _error_html(str(exc))
            return
        self.current = target
        shown, total = entries
        options = [(label, name) for label, name in shown]
        self._listing_update = True
        try:
            self.listing.options = options
            self.listing.value = None
        finally:
            self._listing_update = False
        more = f" (first {len(shown)} of {total})" if total > len(shown) else f" ({total} entries)"
        self.location.value = f"<code>/{html.escape(str(target)) if clean else ''}</code>{html.escape(more)}"
        self.info.value = ""
        self.up_button.disabled = not clean

    def _selected(self, change) -> None:
        if getattr(self, "_listing_update", False) or change["new"] is None:
            return
        name = change["new"]
        path = self.rootfs / self.current / name
        try:
            st = path.lstat()
        except OSError as exc:
            self.info.value = _error_html(str(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            self.open_directory(self.current / name)
            return
        self.info.value = _file_info_html(path, st, "/" + str(self.current / name).lstrip("./"))


def list_directory(directory: Path, limit: int) -> tuple[list[tuple[str, str]], int]:
    """``([(label, name)], total)``: directories first (``name/``), then files; symlinks as
    ``name -> target``; at most ``limit`` entries."""
    dirs, others = [], []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if entry.is_symlink():
                    others.append((f"{entry.name} -> {os.readlink(entry.path)}", entry.name))
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append((f"{entry.name}/", entry.name))
                else:
                    others.append((entry.name, entry.name))
            except OSError:
                others.append((f"{entry.name} (unreadable)", entry.name))
    everything = sorted(dirs) + sorted(others)
    return everything[:limit], len(everything)


def _file_info_html(path: Path, st: os.stat_result, shown: str) -> str:
    kind = ("symlink" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
            else "character device" if stat.S_ISCHR(st.st_mode) else "block device" if stat.S_ISBLK(st.st_mode)
            else "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "other")
    facts = f"{kind}, {stat.filemode(st.st_mode)}, uid {st.st_uid} gid {st.st_gid}, {st.st_size} bytes"
    if stat.S_ISLNK(st.st_mode):
        facts += f", -> {os.readlink(path)}"
    return f"<div style='font-size:12px'><code>{html.escape(shown)}</code>: {html.escape(facts)}</div>"


def _error_html(message: str) -> str:
    return f'<div style="color:var(--jp-error-color1,#cf222e);font-size:12px">&#9888; {html.escape(message)}</div>'


# ============================================================================ ContainerPanel
class ContainerPanel(widgets.VBox):
    """A container: its state (lifecycle and namespaces pictures), its processes (``ps``),
    and start / kill / delete / refresh buttons.  Errors of an action (e.g. start of a
    container that is not ``created``) are shown in the panel, not raised.  ``auto_refresh``
    re-reads the state every ``interval`` seconds from a background thread until unticked or
    ``close()``."""

    def __init__(self, container: Any, *, interval: float = 2.0, **kwargs):
        self.container = container
        self.interval = interval
        self.state_view = widgets.HTML()
        self.processes_view = widgets.HTML()
        self.message = widgets.HTML()
        self.signal = widgets.Dropdown(options=["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"],
                                       value="SIGTERM", layout=widgets.Layout(width="110px"))
        self.force = widgets.Checkbox(description="force", indent=False, layout=widgets.Layout(width="70px"),
                                      tooltip="delete --force: SIGKILL a running container first")
        self.buttons = {}
        for name, icon, action in (("start", "play", self.start), ("kill", "bolt", self.kill),
                                   ("delete", "trash", self.delete), ("refresh", "refresh", self.refresh)):
            button = widgets.Button(description=name, icon=icon, layout=widgets.Layout(width="100px"))
            button.on_click(lambda _b, action=action: action())
            self.buttons[name] = button
        self.auto_refresh = widgets.Checkbox(description="auto-refresh", indent=False,
                                             layout=widgets.Layout(width="120px"))
        self.auto_refresh.observe(self._auto_refresh_changed, names="value")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        toolbar = widgets.HBox([self.buttons["start"], self.signal, self.buttons["kill"], self.force,
                                self.buttons["delete"], self.buttons["refresh"], self.auto_refresh])
        super().__init__(children=[toolbar, self.message, self.state_view,
                                   widgets.HTML("<b>processes</b>"), self.processes_view], **kwargs)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def _act(self, what: str, action: Callable[[], Any]) -> bool:
        try:
            action()
        except (PyociError, OSError) as exc:
            self.message.value = _error_html(f"{what} failed: {exc}")
            self.refresh(keep_message=True)
            return False
        self.message.value = f'<div style="font-size:12px">{html.escape(what)}: done</div>'
        self.refresh(keep_message=True)
        return True

    def start(self) -> bool:
        """``start``: run the user program of a ``created`` container."""
        return self._act("start", self.container.start)

    def kill(self, signal: str | int | None = None) -> bool:
        """``kill``: send the signal chosen in the dropdown (or ``signal``) to the init process."""
        sig = signal if signal is not None else self.signal.value
        return self._act(f"kill {sig}", lambda: self.container.kill(sig))

    def delete(self, force: bool | None = None) -> bool:
        """``delete``: remove a stopped container (``force``: kill it first)."""
        force = self.force.value if force is None else force
        return self._act("delete" + (" --force" if force else ""), lambda: self.container.delete(force=force))

    def refresh(self, keep_message: bool = False) -> None:
        """Re-read the state and the processes."""
        if not keep_message:
            self.message.value = ""
        self.state_view.value = html_repr(self.container)
        state = _safe_state(self.container)
        status = (state or {}).get("status")
        self.buttons["start"].disabled = status != "created"
        self.buttons["kill"].disabled = status not in ("created", "running", "paused")
        self.buttons["delete"].disabled = state is None
        self.processes_view.value = processes_html(self.container, state)

    # ------------------------------------------------------------------ auto refresh
    def _auto_refresh_changed(self, change) -> None:
        if change["new"]:
            self._stop.clear()
            self._thread = threading.Thread(target=self._refresh_loop, name="pyoci-panel-refresh", daemon=True)
            self._thread.start()
        else:
            self._stop_thread()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh(keep_message=True)
            except Exception as exc:  # keep the loop alive; show why
                self.message.value = _error_html(f"refresh failed: {exc}")

    def _stop_thread(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 5)

    def close(self) -> None:
        """Stop the auto-refresh thread and close the widgets."""
        self._stop_thread()
        super().close()


def _safe_state(container: Any) -> dict | None:
    try:
        state = container.state()
    except Exception:
        return None
    return state if isinstance(state, dict) else getattr(state, "to_dict", lambda: None)()


def container_pids(container: Any, state: dict | None) -> list[int]:
    """The container's processes, as ``ps`` inside it would list them: every process in the
    pid namespace of the container's init when it has one of its own (this includes processes
    started with exec), else init and its descendants (parent pids from /proc/<pid>/stat)."""
    pid = (state or {}).get("pid")
    if not pid or (state or {}).get("status") == "stopped":
        return []
    pid = int(pid)
    try:
        init_ns = os.readlink(f"/proc/{pid}/ns/pid")
        own_ns = init_ns != os.readlink("/proc/self/ns/pid")
    except OSError:
        return []
    parents: dict[int, int] = {}
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        candidate = int(entry)
        try:
            if own_ns:
                if os.readlink(f"/proc/{candidate}/ns/pid") == init_ns:
                    members.append(candidate)
            else:
                text = Path(f"/proc/{candidate}/stat").read_text()
                parents[candidate] = int(text[text.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile, or not ours to read
    if own_ns:
        return sorted(members)
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        if current in found:
            continue
        found.append(current)
        queue.extend(child for child, parent in parents.items() if parent == current)
    return sorted(found)


def _proc_row(pid: int) -> tuple[str, str, str, str] | None:
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the state follows the last ')'
    comm = stat_text[stat_text.index("(") + 1: stat_text.rindex(")")]
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
    return str(pid), fields[1], fields[0], shlex.join(args) if args else f"[{comm}]"


def processes_html(container: Any, state: dict | None) -> str:
    """A ``ps``-like table (PID, PPID, state, command) of the container's processes."""
    pids = container_pids(container, state)
    rows = [r for r in (_proc_row(pid) for pid in pids) if r is not None]
    if not rows:
        return '<div style="font-size:12px;font-style:italic">no processes</div>'
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f"{stylesheet()}<div class='pyoci-repr'><table class='pyoci-tbl pyoci-records'><thead><tr><th>PID</th><th>PPID</th>"
            f"<th>state</th><th>command</th></tr></thead><tbody>{body}</tbody></table></div>")
