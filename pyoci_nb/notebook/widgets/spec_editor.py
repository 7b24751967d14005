"""``SpecEditor``: a two-way form over the runtime-spec ``Spec`` (config.json)."""

from __future__ import annotations

import html
import os
import shlex
from typing import Any

import ipywidgets as widgets
import traitlets
from ipywidgets.widgets.widget_bool import CheckboxStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from pyoci_nb.errors import ConfigError
from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs import html_repr
from pyoci_nb.notebook.widgets.bindings import Binding, RowsBinding, ValueBinding
from pyoci_nb.notebook.widgets.capabilities import CAPABILITY_PRESETS, CapabilitiesBinding
from pyoci_nb.notebook.widgets.namespaces import NAMESPACE_TYPES, NamespacesBinding
from pyoci_nb.notebook.widgets.parsing import (
    FieldError,
    lines_of,
    parse_args,
    parse_int,
    parse_int_list,
    parse_size,
    rlimit_text,
)
from pyoci_nb.notebook.widgets.seccomp import SeccompBinding
from pyoci_nb.spec import Spec, default_spec, load_spec
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_SETS
from pyoci_nb.spec.validation import RLIMIT_TYPES


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
                                 '(editor.spec keeps its last valid value):'
                                 f'<ul style="margin:0">{items}{more}</ul></div>')
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
            self._value_row("process.args", args, to_widget=shlex.join, parse=parse_args),
            self._value_row("process.env", env, to_widget="\n".join, parse=lambda t: lines_of(t) or None),
            self._value_row("process.cwd", _text("/"), parse=lambda t: t or None),
            self._value_row("process.user.uid", _text("0", "120px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0)),
            self._value_row("process.user.gid", _text("0", "120px"), to_widget=str,
                            parse=lambda t: parse_int(t, minimum=0)),
            self._value_row("process.user.additionalGids", _text("e.g. 10, 20", "240px"),
                            to_widget=lambda v: ", ".join(str(g) for g in v), parse=parse_int_list),
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
            f'<span style="font-size:12px"><b>{s}</b>: '
            f'{html.escape(glossary.explain("process.capabilities." + s))}</span>'
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
        binding = RowsBinding("process.rlimits", [
            ("type", lambda: widgets.Dropdown(options=RLIMIT_TYPES, layout=widgets.Layout(width="200px")),
             str, str),
            ("soft", lambda: _text("", "180px"), rlimit_text, lambda t: parse_int(t, minimum=0, allow_unlimited=True)),
            ("hard", lambda: _text("", "180px"), rlimit_text, lambda t: parse_int(t, minimum=0, allow_unlimited=True)),
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
            self._value_row("linux.maskedPaths", area(), to_widget="\n".join, parse=lambda t: lines_of(t) or None,
                            label="maskedPaths"),
            self._value_row("linux.readonlyPaths", area(), to_widget="\n".join, parse=lambda t: lines_of(t) or None,
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
