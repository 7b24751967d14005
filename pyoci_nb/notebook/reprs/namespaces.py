"""Namespaces: ``linux.namespaces`` of a config drawn as host vs container (new, joined by path,
or shared), a live process's namespaces compared with this one's by the inode numbers in
``/proc/<pid>/ns``, and the user namespace's id mappings as text."""

from __future__ import annotations

import os
import re
from typing import Any

from pyoci_nb.notebook import svg
from pyoci_nb.notebook.reprs.blocks import section
from pyoci_nb.notebook.reprs.common import cut
from pyoci_nb.notebook.reprs.paths import register_path
from pyoci_nb.notebook.reprs.tree_html import records_html
from pyoci_nb.notebook.reprs.values import plain

#: Namespace types of config-linux.md -> the file name under /proc/<pid>/ns.
NAMESPACE_FILES: dict[str, str] = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc",
    "uts": "uts", "user": "user", "cgroup": "cgroup", "time": "time",
}


def namespace_inodes(pid: int | str) -> dict[str, str | None]:
    """``{"net": "net:[4026531840]", ...}`` read from ``/proc/<pid>/ns`` (None when unreadable)."""
    result = {}
    for name in NAMESPACE_FILES.values():
        try:
            result[name] = os.readlink(f"/proc/{pid}/ns/{name}")
        except OSError:
            result[name] = None
    return result


def config_namespace_rows(namespaces: list) -> list[tuple[str, str, str, str]]:
    wanted = {}
    for ns in plain(namespaces):
        if isinstance(ns, dict) and ns.get("type"):
            wanted[str(ns["type"])] = ns.get("path")
    rows = []
    for ns_type in NAMESPACE_FILES:
        if ns_type not in wanted:
            rows.append((ns_type, "", "", "shared"))
        elif wanted[ns_type]:
            rows.append((ns_type, "the runtime's", f"joins {cut(str(wanted[ns_type]), 40)}", "join"))
        else:
            rows.append((ns_type, "the runtime's", "new", "new"))
    for ns_type in wanted:
        if ns_type not in NAMESPACE_FILES:
            rows.append((ns_type, "", "unknown type", "unknown"))
    return rows


def namespace_rows_for_pid(pid: int, host_pid: int | str = "self") -> list[tuple[str, str, str, str]]:
    """Rows for ``svg.namespaces_svg`` comparing the namespaces of ``host_pid`` (this process)
    and ``pid`` by inode number."""
    host = namespace_inodes(host_pid)
    container = namespace_inodes(pid)
    rows = []
    for ns_type, name in NAMESPACE_FILES.items():
        h, c = host.get(name), container.get(name)
        host_text = inode_text(h)
        if h is None and c is None:
            continue  # the kernel has no such namespace type
        if c is None:
            rows.append((ns_type, host_text, "unreadable", "unknown"))
        elif h == c:
            rows.append((ns_type, host_text, host_text, "shared"))
        else:
            rows.append((ns_type, host_text, inode_text(c), "new"))
    return rows


def inode_text(link: str | None) -> str:
    if not link:
        return "?"
    match = re.search(r"\[(\d+)\]", link)
    return f"inode {match.group(1)}" if match else link


def namespaces_html(value: Any, path: str = "linux.namespaces", depth: int = 0) -> str:
    """``linux.namespaces`` of a config: host vs container picture (new, joined by path, or shared
    with the runtime when the type is not listed -- config-linux.md), then the list as given."""
    items = list(value or [])
    picture = svg.namespaces_svg(config_namespace_rows(items), container_label="container (config)")
    listed = section("as listed", records_html(items, path), count=str(len(items)), open_=False,
                      explanation="in the config's order")
    return picture + listed


def _namespaces_brief(value: Any) -> str:
    return " ".join(str(ns.get("type")) + ("(path)" if ns.get("path") else "") for ns in plain(value))


def _namespaces_text(value: Any) -> list[str]:
    parts = [f"{ns.get('type')}" + (f"={ns.get('path')}" if ns.get("path") else "") for ns in plain(value)]
    return [" ".join(parts) or "[]"]


def _id_mappings_text(value: Any) -> list[str]:
    maps = plain(value)
    return [", ".join(f"{m.get('containerID')}->{m.get('hostID')} ({m.get('size')})" for m in maps[:8])
            + (" ..." if len(maps) > 8 else "") or "[]"]


register_path("linux.namespaces", html=namespaces_html, text=_namespaces_text, brief=_namespaces_brief, section=True)
register_path("linux.uidMappings", text=_id_mappings_text)
register_path("linux.gidMappings", text=_id_mappings_text)
