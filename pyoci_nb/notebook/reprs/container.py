"""The runtime's ``Container`` (id, status, pid, the lifecycle with the status lit, its
namespaces next to this process's, its state) and ``CompletedContainer`` (as a run result)."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import svg
from pyoci_nb.notebook.reprs.blocks import header, section
from pyoci_nb.notebook.reprs.common import esc, exception_text, type_name
from pyoci_nb.notebook.reprs.dispatch import register
from pyoci_nb.notebook.reprs.namespaces import namespace_rows_for_pid
from pyoci_nb.notebook.reprs.result import run_result_html, run_result_text
from pyoci_nb.notebook.reprs.state import state_rows
from pyoci_nb.notebook.reprs.tree_text import node_text
from pyoci_nb.notebook.reprs.values import plain
from pyoci_nb.runtime.container import CompletedContainer, Container


def _container_state(container: Any) -> tuple[dict | None, str]:
    try:
        state = container.state()
    except Exception as exc:
        return None, exception_text(exc)
    return plain(state) if not isinstance(state, dict) else state, ""


def container_html(container: Any) -> str:
    """A container: id, status, pid, the lifecycle with the status lit, the namespaces of its
    process next to this process's (inode numbers from /proc/<pid>/ns), and its state."""
    state, error = _container_state(container)
    cid = getattr(container, "id", None)
    if state is None:
        return (header(type_name(container), [("", cid)])
                + f'<div class="pyoci-failed">state unavailable: {esc(error)}</div>')
    status = state.get("status")
    pid = state.get("pid")
    facts = [("", cid), ("status", status), ("pid", pid), ("bundle", state.get("bundle"))]
    parts = [header(type_name(container), facts, hover="an OCI container (runtime-spec runtime.md)"),
             svg.lifecycle_svg(status)]
    if pid and status in ("created", "running", "paused"):
        rows = namespace_rows_for_pid(pid)
        if rows:
            parts.append(section("namespaces", svg.namespaces_svg(rows, container_label=f"container (pid {pid})"),
                                  count=str(sum(1 for r in rows if r[3] == "new")) + " of its own",
                                  explanation="inode numbers read from /proc/<pid>/ns: equal means shared"))
    parts.append(section("state", state_rows(state, state), count=str(len(state)),
                          explanation="what `pyoci state` prints", open_=True))
    return "".join(parts)


def container_text(container: Any) -> str:
    """A container as text: id, status, pid, then its state."""
    state, error = _container_state(container)
    cid = getattr(container, "id", None)
    if state is None:
        return f"{type_name(container)} {cid}: state unavailable: {error}"
    lines = [f"{type_name(container)} {cid}: {state.get('status')}"
             + (f", pid {state.get('pid')}" if state.get("pid") else "")]
    lines.extend(node_text(state, "state", 1))
    return "\n".join(lines)


register(Container, html=container_html, text=container_text)
register(CompletedContainer, html=run_result_html, text=run_result_text)
