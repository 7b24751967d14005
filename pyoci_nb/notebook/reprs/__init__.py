"""Rich reprs for every public object of pyoci_nb: ``html_repr(obj)`` and ``text_repr(obj)``.

The classes delegate here lazily (``_repr_html_`` / ``_repr_pretty_``, ``pyoci_nb.richrepr``).
One small module per object family, each of pure functions; ``dispatch`` picks the renderer by
the object's class (``functools.singledispatch``), registered by the family module next to its
renderers.  Importing this package imports neither pydantic nor the runtime: a family module is
imported only once the module defining its classes is (see ``dispatch.FAMILIES``); spec parts
are recognised by duck typing (``type(obj).model_fields``).

HTML (in the style of xarray's reprs):

* static HTML + CSS, no JavaScript, no ids, nothing random: the same object renders to the
  same bytes (nbval compares outputs byte for byte);
* a compact header line (the object's type and key facts), then collapsible
  ``<details>/<summary>`` sections, which survive JupyterLab's sanitizer of untrusted output;
* long lists show their first items and tuck the rest under a "N more" section; strings are cut
  with a count; every value is escaped;
* each field shows the model's description (the spec's words) on hover and a plain-words
  explanation beside it (``glossary.py``);
* pictures where they beat words (``svg.py``, registered per JSON path): the lifecycle with the
  current status lit, host vs container namespaces with inode numbers read from
  ``/proc/<pid>/ns``, a capability grid, a mounts table;
* the stylesheet (``style.css``, read once) is embedded in each repr, scoped under
  ``.pyoci-repr``, with colours from JupyterLab's CSS variables and fallbacks for light and dark
  elsewhere.

Text: a bounded, multi-line, YAML-like text (at most ``MAX_TEXT_LINES`` lines) that is stable:
the same object always gives the same text.

Neither function ever raises: on an internal error they return an escaped note saying that the
repr failed and why.

Modules: ``common`` (limits, escaping, counts, stylesheet), ``values`` (model fields, plain
data, JSON paths), ``blocks`` (HTML sections, header, tables), ``paths`` (renderers per JSON
path), ``tree_html`` / ``tree_text`` (any model, dict or list), ``dispatch`` (by class);
spec parts: ``capabilities``, ``namespaces``, ``seccomp``, ``process``, ``mounts``; families:
``spec``, ``state``, ``validation``, ``diff``, ``result``, ``container``, ``bundle``, ``probe``.
"""

from __future__ import annotations

import sys

from pyoci_nb.notebook.reprs import process as _process  # noqa: F401 -- registers process.*

# the spec parts register their pictures per JSON path on import
from pyoci_nb.notebook.reprs.capabilities import CAPABILITY_SETS, capabilities_html, capabilities_text
from pyoci_nb.notebook.reprs.common import (
    MAX_ITEMS,
    MAX_OUTPUT_LINES,
    MAX_RENDERED_ITEMS,
    MAX_STRING,
    MAX_TEXT_LINES,
    bound_lines,
    stylesheet,
    wrap,
)
from pyoci_nb.notebook.reprs.dispatch import html_repr, register, text_repr
from pyoci_nb.notebook.reprs.mounts import mounts_text
from pyoci_nb.notebook.reprs.namespaces import (
    NAMESPACE_FILES,
    config_namespace_rows,
    namespace_inodes,
    namespace_rows_for_pid,
    namespaces_html,
)
from pyoci_nb.notebook.reprs.paths import path_of, register_path
from pyoci_nb.notebook.reprs.seccomp import seccomp_html
from pyoci_nb.notebook.reprs.state import state_html, state_text
from pyoci_nb.notebook.reprs.tree_html import model_html, node_html, records_html
from pyoci_nb.notebook.reprs.tree_text import node_text
from pyoci_nb.notebook.reprs.values import RLIM_INFINITY, field_descriptions, is_model, model_items, plain

#: names of the family modules that import their classes (pydantic, the runtime ...): loaded
#: on first use.
_LAZY = {
    "spec_html": "spec", "spec_text": "spec",
    "as_report": "validation", "report_html": "validation", "report_text": "validation",
    "problem_html": "validation", "problem_text": "validation",
    "diff_entries": "diff", "diff_html": "diff", "diff_text": "diff",
    "run_result_html": "result", "run_result_text": "result",
    "container_html": "container", "container_text": "container",
    "rootfs_entries": "bundle", "bundle_html": "bundle", "bundle_text": "bundle",
    "probe_html": "probe", "probe_text": "probe",
}

__all__ = [
    "CAPABILITY_SETS", "MAX_ITEMS", "MAX_OUTPUT_LINES", "MAX_RENDERED_ITEMS", "MAX_STRING", "MAX_TEXT_LINES",
    "NAMESPACE_FILES", "RLIM_INFINITY", "bound_lines", "capabilities_html", "capabilities_text",
    "config_namespace_rows", "field_descriptions", "html_repr", "is_model", "model_html", "model_items",
    "mounts_text", "namespace_inodes", "namespace_rows_for_pid", "namespaces_html", "node_html", "node_text",
    "path_of", "plain", "records_html", "register", "register_path", "seccomp_html", "state_html", "state_text",
    "stylesheet", "text_repr", "wrap",
]
__all__ += list(_LAZY)


def __getattr__(name: str):
    try:
        module_name = f"{__name__}.{_LAZY[name]}"
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    __import__(module_name)
    value = getattr(sys.modules[module_name], name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
