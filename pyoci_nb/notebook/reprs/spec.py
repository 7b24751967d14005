"""The config models: ``Spec`` (a line of key facts, then every part), ``State`` and ``Features``
(``State`` through ``state.py``; ``Features`` and the parts through the generic renderers)."""

from __future__ import annotations

import shlex
from typing import Any

from pyoci_nb.notebook.reprs.blocks import header
from pyoci_nb.notebook.reprs.common import type_name
from pyoci_nb.notebook.reprs.dispatch import register
from pyoci_nb.notebook.reprs.state import state_html, state_text
from pyoci_nb.notebook.reprs.tree_html import model_html
from pyoci_nb.notebook.reprs.tree_text import node_text
from pyoci_nb.notebook.reprs.values import plain
from pyoci_nb.spec.models import Spec, State


def _spec_facts(spec: Any) -> list[tuple[str, Any]]:
    data = plain(spec)
    process = data.get("process") or {}
    root = data.get("root") or {}
    linux = data.get("linux") or {}
    facts = [("ociVersion", data.get("ociVersion"))]
    if process.get("args"):
        facts.append(("args", shlex.join(str(a) for a in process["args"])))
    if root:
        facts.append(("root", f"{root.get('path')}" + (" (read-only)" if root.get("readonly") else "")))
    facts.append(("hostname", data.get("hostname")))
    facts.append(("mounts", len(data.get("mounts") or [])))
    if "namespaces" in linux:
        facts.append(("namespaces", " ".join(str(ns.get("type")) for ns in linux["namespaces"]) or "none"))
    return facts


def spec_html(spec: Any) -> str:
    """A Spec: header with the key facts, then every part."""
    head = header(type_name(spec), _spec_facts(spec),
                  hover="config.json: the container's configuration (runtime-spec config.md)")
    return head + model_html(spec, "", 0)


def spec_text(spec: Any) -> str:
    """A Spec as text: a line of key facts, then every part (YAML-like, bounded)."""
    facts = ", ".join(f"{k} {v}" for k, v in _spec_facts(spec) if v not in (None, ""))
    return "\n".join([f"{type_name(spec)}: {facts}"] + node_text(spec, "", 1))


register(Spec, html=spec_html, text=spec_text)
register(State, html=state_html, text=state_text)
