"""Static SVG pictures for the reprs: the container lifecycle and host-vs-container namespaces.

Deterministic markup (no ids, no random numbers, no ``<defs>``/markers: arrow heads are drawn
as polygons) so notebooks compare byte for byte.  Every shape has presentation attributes with
light-theme colours and a ``pyoci-svg-*`` class that style.css maps to the theme's colours, so
the picture reads with or without the stylesheet.  All text is escaped.
"""

from __future__ import annotations

from html import escape

#: runtime.md's lifecycle, in order.
LIFECYCLE_STATES: tuple[str, ...] = ("creating", "created", "running", "stopped")

#: What each status means (runtime.md, "State").
STATUS_MEANINGS: dict[str, str] = {
    "creating": "the container is being created (create has not finished)",
    "created": "create finished; the user program has not started (it waits for start)",
    "running": "the user program has been started and has not exited",
    "stopped": "the container process exited; delete removes what is left",
    "paused": "every process of the container is frozen (runc's extra status)",
}


def _e(value) -> str:
    return escape(str(value), quote=True)


def _box(x: float, y: float, w: float, h: float, label: str, *, lit: bool = False, new: bool = False,
         title: str = "", mono: bool = False, rx: int = 6) -> str:
    if lit:
        cls, fill, stroke, text_cls, text_fill = ("pyoci-svg-lit", "#0969da", "#0969da",
                                                  ' class="pyoci-svg-lit-text"', "#ffffff")
    elif new:
        cls, fill, stroke, text_cls, text_fill = "pyoci-svg-new", "#ddf4ff", "#0969da", "", "#1f2328"
    else:
        cls, fill, stroke, text_cls, text_fill = "pyoci-svg-box", "#eff2f5", "#d1d9e0", "", "#1f2328"
    if mono:
        text_cls = text_cls[:-1] + ' pyoci-svg-mono"' if text_cls else ' class="pyoci-svg-mono"'
    tooltip = f"<title>{_e(title)}</title>" if title else ""
    weight = ' font-weight="700"' if lit else ""
    return (f'<g>{tooltip}<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" class="{cls}" '
            f'fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x + w / 2}" y="{y + h / 2 + 4}" text-anchor="middle" font-size="12"{weight} '
            f'fill="{text_fill}"{text_cls}>{_e(label)}</text></g>')


def _arrow(x1: float, y1: float, x2: float, y2: float, label: str = "", *, label_dy: float = -6) -> str:
    """A straight arrow from (x1, y1) to (x2, y2) with its head drawn as a polygon."""
    parts = [f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" class="pyoci-svg-line" '
             'stroke="#59636e" stroke-width="1.3"/>']
    if x1 == x2:  # vertical
        d = 1 if y2 > y1 else -1
        points = f"{x2},{y2} {x2 - 4},{y2 - 7 * d} {x2 + 4},{y2 - 7 * d}"
    else:
        d = 1 if x2 > x1 else -1
        points = f"{x2},{y2} {x2 - 7 * d},{y2 - 4} {x2 - 7 * d},{y2 + 4}"
    parts.append(f'<polygon points="{points}" class="pyoci-svg-arrow" fill="#59636e"/>')
    if label:
        if x1 == x2:
            parts.append(f'<text x="{x1 + 6}" y="{(y1 + y2) / 2 + 4}" font-size="11" '
                         f'class="pyoci-svg-muted" fill="#59636e">{_e(label)}</text>')
        else:
            parts.append(f'<text x="{(x1 + x2) / 2}" y="{y1 + label_dy}" text-anchor="middle" font-size="11" '
                         f'class="pyoci-svg-muted" fill="#59636e">{_e(label)}</text>')
    return "".join(parts)


def lifecycle_svg(status: str | None) -> str:
    """The OCI lifecycle creating -> created -> running -> stopped (plus runc's paused), with
    ``status`` lit.  An unknown status lights nothing and is named in the caption."""
    status = (status or "").lower()
    box_w, box_h, gap, left, top = 90, 32, 78, 52, 22
    xs = [left + i * (box_w + gap) for i in range(len(LIFECYCLE_STATES))]
    width = xs[-1] + box_w + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="118" '
             f'viewBox="0 0 {width} 118" role="img" '
             f'aria-label="container lifecycle, status {_e(status or "unknown")}">',
             f'<title>OCI container lifecycle; current status: {_e(status or "unknown")}</title>']
    mid = top + box_h / 2
    parts.append(_arrow(4, mid, xs[0] - 2, mid, "create"))
    labels = ("set-up done", "start", "exit / kill")
    for i, state in enumerate(LIFECYCLE_STATES):
        parts.append(_box(xs[i], top, box_w, box_h, state, lit=(state == status),
                          title=STATUS_MEANINGS[state]))
        if i + 1 < len(LIFECYCLE_STATES):
            parts.append(_arrow(xs[i] + box_w + 2, mid, xs[i + 1] - 2, mid, labels[i]))
    parts.append(_arrow(xs[-1] + box_w + 2, mid, width - 4, mid, "delete"))
    # runc's "paused" hangs below "running": pause / resume.
    run_x = xs[LIFECYCLE_STATES.index("running")]
    paused_y = top + box_h + 32
    parts.append(_arrow(run_x + box_w / 2 - 14, top + box_h + 2, run_x + box_w / 2 - 14, paused_y - 2, ""))
    parts.append(_arrow(run_x + box_w / 2 + 14, paused_y - 2, run_x + box_w / 2 + 14, top + box_h + 2, ""))
    parts.append(f'<text x="{run_x + box_w / 2 - 20}" y="{top + box_h + 20}" text-anchor="end" font-size="11" '
                 f'class="pyoci-svg-muted" fill="#59636e">pause</text>')
    parts.append(f'<text x="{run_x + box_w / 2 + 20}" y="{top + box_h + 20}" font-size="11" '
                 f'class="pyoci-svg-muted" fill="#59636e">resume</text>')
    parts.append(_box(run_x, paused_y, box_w, 26, "paused", lit=(status == "paused"),
                      title=STATUS_MEANINGS["paused"]))
    if status and status not in LIFECYCLE_STATES and status != "paused":
        parts.append(f'<text x="4" y="112" font-size="11" class="pyoci-svg-muted" fill="#59636e">'
                     f'status {_e(status)} is not one of the spec\'s states</text>')
    parts.append("</svg>")
    return "".join(parts)


def namespaces_svg(rows: list[tuple[str, str, str, str]], *, container_label: str = "container") -> str:
    """Host vs container, one row per namespace type.

    ``rows`` holds ``(type, host_text, container_text, relation)`` where ``relation`` is
    ``"shared"`` (one box across both columns: the container uses the host's namespace),
    ``"new"`` (a namespace of its own, highlighted), ``"join"`` (joins the namespace named by
    ``container_text``) or ``"unknown"`` (could not be read)."""
    label_w, col_w, gap, row_h, top = 70, 200, 16, 26, 26
    host_x = label_w
    cont_x = label_w + col_w + gap
    width = cont_x + col_w + 4
    height = top + row_h * len(rows) + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="namespaces, host and {_e(container_label)}">',
             f'<title>namespaces: host and {_e(container_label)}</title>',
             f'<text x="{host_x + col_w / 2}" y="16" text-anchor="middle" font-size="12" font-weight="700" '
             f'fill="#1f2328">host</text>',
             f'<text x="{cont_x + col_w / 2}" y="16" text-anchor="middle" font-size="12" font-weight="700" '
             f'fill="#1f2328">{_e(container_label)}</text>']
    for i, (ns_type, host_text, container_text, relation) in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" '
                     f'class="pyoci-svg-mono" fill="#1f2328">{_e(ns_type)}</text>')
        if relation == "shared":
            parts.append(_box(host_x, y, col_w * 2 + gap, row_h - 6, f"shared  {host_text}".rstrip(),
                              title=f"{ns_type}: the container uses the host's namespace", mono=True, rx=4))
        else:
            parts.append(_box(host_x, y, col_w, row_h - 6, host_text, title=f"{ns_type} namespace of the host",
                              mono=True, rx=4))
            tip = {"new": f"{ns_type}: a namespace of its own",
                   "join": f"{ns_type}: joins an existing namespace",
                   }.get(relation, f"{ns_type}: not readable")
            parts.append(_box(cont_x, y, col_w, row_h - 6, container_text, new=(relation in ("new", "join")),
                              title=tip, mono=True, rx=4))
    parts.append("</svg>")
    return "".join(parts)
