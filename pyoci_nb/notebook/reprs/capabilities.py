"""``process.capabilities``: a grid with one row per capability held in any set and one column
per set; as text, one line per set."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.blocks import code, title_attr
from pyoci_nb.notebook.reprs.common import esc
from pyoci_nb.notebook.reprs.paths import register_path
from pyoci_nb.notebook.reprs.values import field_descriptions, hover_text, join_path, plain
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_SETS  # standard library only, no pydantic


def capabilities_html(value: Any, path: str = "process.capabilities", depth: int = 0) -> str:
    """The capability grid: one row per capability held in any set, one column per set."""
    sets = {name: [str(c) for c in (plain(value).get(name) or [])] for name in CAPABILITY_SETS}
    descriptions = field_descriptions(type(value))
    present = {c for caps in sets.values() for c in caps}
    known = [c for c in ALL_CAPABILITIES if c in present]
    unknown = sorted(present - set(ALL_CAPABILITIES))
    head = "".join(
        f'<th{title_attr(hover_text(join_path(path, s), descriptions.get(s, "")))}>{esc(s)}'
        f'<br><span class="pyoci-count">{len(sets[s])}</span></th>'
        for s in CAPABILITY_SETS)
    body = []
    for cap in known + unknown:
        cells = "".join(
            '<td class="pyoci-cap-on">&#10003;</td>' if cap in sets[s] else '<td class="pyoci-cap-off">&#183;</td>'
            for s in CAPABILITY_SETS)
        title = "" if cap in ALL_CAPABILITIES else ' title="not a capability this runtime knows"'
        body.append(f'<tr><th class="pyoci-capname"{title}>{esc(cap)}</th>{cells}</tr>')
    explain_rows = "".join(
        f'<li>{code(s)} <span class="pyoci-explain">{esc(glossary.explain(join_path(path, s)))}</span></li>'
        for s in CAPABILITY_SETS)
    missing = len(ALL_CAPABILITIES) - len(known)
    note = (f'<div class="pyoci-more">{missing} of the kernel\'s {len(ALL_CAPABILITIES)} capabilities '
            f'are in no set</div>')
    if not body:
        grid = '<div class="pyoci-null">no capabilities in any set</div>'
    else:
        grid = (f'<table class="pyoci-tbl pyoci-capgrid"><thead><tr><th>capability</th>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')
    return f'{grid}{note}<ul style="margin:2px 0;padding-left:18px">{explain_rows}</ul>'


def _capabilities_brief(value: Any) -> str:
    data = plain(value)
    return " · ".join(f"{s} {len(data.get(s) or [])}" for s in CAPABILITY_SETS if s in data)


def capabilities_text(value: Any) -> list[str]:
    """One line per capability set: ``bounding (3): CAP_AUDIT_WRITE CAP_KILL ...``."""
    data = plain(value)
    lines = []
    for name in CAPABILITY_SETS:
        if name in data:
            caps = [str(c) for c in data.get(name) or []]
            shown = " ".join(caps[:12]) + (f" ... {len(caps) - 12} more" if len(caps) > 12 else "")
            lines.append(f"{name} ({len(caps)}): {shown}".rstrip())
    return lines or ["(no sets)"]


register_path("process.capabilities", html=capabilities_html, text=capabilities_text, brief=_capabilities_brief,
              section=True)
