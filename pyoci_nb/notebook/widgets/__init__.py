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
its processes (those of its cgroup, as ``pyoci ps`` lists them), and start / kill / delete /
refresh buttons.

Modules: ``spec_editor`` (the form and its tabs), ``bindings`` (a part of the form bound to a
JSON path; value and row bindings), ``capabilities`` / ``namespaces`` / ``seccomp`` (the
bindings of those tabs), ``parsing`` (form values -> JSON values), ``bundle_browser``,
``container_panel``, ``common`` (error and message lines).
"""

from __future__ import annotations

from pyoci_nb.notebook.widgets.bindings import Binding, RowsBinding, ValueBinding
from pyoci_nb.notebook.widgets.bundle_browser import BundleBrowser, list_directory
from pyoci_nb.notebook.widgets.capabilities import CAPABILITY_PRESETS, CapabilitiesBinding
from pyoci_nb.notebook.widgets.container_panel import ContainerPanel, container_pids, processes_html
from pyoci_nb.notebook.widgets.namespaces import NAMESPACE_TYPES, NamespacesBinding
from pyoci_nb.notebook.widgets.parsing import RLIM_INFINITY, FieldError, parse_int, parse_size
from pyoci_nb.notebook.widgets.seccomp import SeccompBinding
from pyoci_nb.notebook.widgets.spec_editor import SpecEditor

__all__ = [
    "CAPABILITY_PRESETS", "NAMESPACE_TYPES", "RLIM_INFINITY", "Binding", "BundleBrowser", "CapabilitiesBinding",
    "ContainerPanel", "FieldError", "NamespacesBinding", "RowsBinding", "SeccompBinding", "SpecEditor",
    "ValueBinding", "container_pids", "list_directory", "parse_int", "parse_size", "processes_html",
]
