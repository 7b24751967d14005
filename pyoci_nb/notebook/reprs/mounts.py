"""``mounts`` (a table in HTML, see ``tree_html.COLUMN_ORDER``) as aligned text columns, and
their destinations on the collapsed section's line; ``hooks`` as one line per kind."""

from __future__ import annotations

import shlex
from typing import Any

from pyoci_nb.notebook.reprs.common import MAX_ITEMS, cut
from pyoci_nb.notebook.reprs.paths import register_path
from pyoci_nb.notebook.reprs.tree_text import table_text
from pyoci_nb.notebook.reprs.values import json_compact, plain


def _mounts_brief(value: Any) -> str:
    return " ".join(str(m.get("destination")) for m in plain(value)[:8]) + (" ..." if len(value) > 8 else "")


def mounts_text(value: Any) -> list[str]:
    """The mounts as aligned columns: destination, type, source, options (in mount order)."""
    mounts = plain(value)
    rows = [[cut(str(m.get("destination", "")), 50), str(m.get("type", "")), cut(str(m.get("source", "")), 50),
             cut(",".join(str(o) for o in m.get("options") or []), 70)] for m in mounts[:MAX_ITEMS * 2]]
    lines = table_text(rows) if rows else ["[]"]
    if len(mounts) > MAX_ITEMS * 2:
        lines.append(f"... {len(mounts) - MAX_ITEMS * 2} more ({len(mounts)} in all)")
    return lines


def _hooks_text(value: Any) -> list[str]:
    lines = []
    for kind, hooks in plain(value).items():
        if isinstance(hooks, list):
            shown = "; ".join(cut(shlex.join([str(h.get("path"))] + [str(a) for a in (h.get("args") or [])[1:]]), 60)
                              + (f" (timeout {h['timeout']}s)" if h.get("timeout") else "") for h in hooks[:4])
            lines.append(f"{kind} ({len(hooks)}): {shown}" + (" ..." if len(hooks) > 4 else ""))
        else:
            lines.append(f"{kind}: {cut(json_compact(hooks), 100)}")
    return lines or ["{}"]


register_path("mounts", text=mounts_text, brief=_mounts_brief)
register_path("hooks", text=_hooks_text)
