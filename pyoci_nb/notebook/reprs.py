"""Rich reprs for every public object of pyoci_nb: ``html_repr(obj)`` and ``text_repr(obj)``.

The classes delegate here lazily (``_repr_html_`` / ``_repr_pretty_``), so this module imports
neither pydantic nor the runtime: spec models are recognised by duck typing
(``type(obj).model_fields``), runtime objects by class name (see ``register``).

HTML (in the style of xarray's reprs):

* static HTML + CSS, no JavaScript, no ids, nothing random: the same object renders to the
  same bytes (nbval compares outputs byte for byte);
* a compact header line (the object's type and key facts), then collapsible
  ``<details>/<summary>`` sections, which survive JupyterLab's sanitizer of untrusted output;
* long lists show their first items and tuck the rest under a "N more" section; strings are cut
  with a count; every value is escaped;
* each field shows the model's description (the spec's words) on hover and a plain-words
  explanation beside it (``glossary.py``);
* pictures where they beat words (``svg.py``): the lifecycle with the current status lit, host
  vs container namespaces with inode numbers read from ``/proc/<pid>/ns``, a capability grid,
  a mounts table;
* the stylesheet (``style.css``) is embedded in each repr, scoped under ``.pyoci-repr``, with
  colours from JupyterLab's CSS variables and fallbacks for light and dark elsewhere.

Text: a bounded, multi-line, YAML-like text (at most ``MAX_TEXT_LINES`` lines) that is stable:
the same object always gives the same text.

Neither function ever raises: on an internal error they return an escaped note saying that the
repr failed and why.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shlex
import sys
import typing
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable

from pyoci_nb.notebook import glossary, svg

#: The five capability sets (spec/capabilities.py is imported lazily: importing the spec
#: package must not be a cost of rendering runtime objects).
CAPABILITY_SETS: tuple[str, ...] = ("bounding", "effective", "inheritable", "permitted", "ambient")


def _all_capabilities() -> tuple[str, ...]:
    from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

    return ALL_CAPABILITIES

#: List items shown before the rest is tucked under a "N more" section (HTML) or summarised (text).
MAX_ITEMS = 12
#: Items rendered at all; past this only a count is shown.
MAX_RENDERED_ITEMS = 400
#: Characters of one string value shown before it is cut.
MAX_STRING = 300
#: Lines of a text repr.
MAX_TEXT_LINES = 80
#: Lines of a program's output shown by a run result's repr.
MAX_OUTPUT_LINES = 200

#: Namespace types of config-linux.md -> the file name under /proc/<pid>/ns.
NAMESPACE_FILES: dict[str, str] = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc",
    "uts": "uts", "user": "user", "cgroup": "cgroup", "time": "time",
}

RLIM_INFINITY = 2**64 - 1

_HtmlRenderer = Callable[[Any], str]
_TextRenderer = Callable[[Any], str]
_HTML_RENDERERS: dict[str, _HtmlRenderer] = {}
_TEXT_RENDERERS: dict[str, _TextRenderer] = {}


def register(*class_names: str, html: _HtmlRenderer | None = None, text: _TextRenderer | None = None) -> None:
    """Use ``html(obj) -> str`` (the body, without the wrapper and stylesheet) and
    ``text(obj) -> str`` for objects whose class, or a base class, has one of ``class_names``."""
    for name in class_names:
        if html is not None:
            _HTML_RENDERERS[name] = html
        if text is not None:
            _TEXT_RENDERERS[name] = text


# =========================================================================== entry points
def html_repr(obj: Any) -> str:
    """The HTML repr of ``obj`` (a ``<div class="pyoci-repr">`` with its stylesheet); never raises."""
    try:
        body = _find_renderer(obj, _HTML_RENDERERS, _generic_html)(obj)
    except Exception as exc:  # a repr must never raise
        body = _failure_html(obj, exc)
    try:
        style = stylesheet()
    except Exception:
        style = ""
    return f'<div class="pyoci-repr">{style}{body}</div>'


def text_repr(obj: Any) -> str:
    """The plain-text repr of ``obj``: at most ``MAX_TEXT_LINES`` lines; never raises."""
    try:
        text = _find_renderer(obj, _TEXT_RENDERERS, _generic_text)(obj)
    except Exception as exc:  # a repr must never raise
        return f"<{_type_name(obj)}: repr failed: {_exception_text(exc)}>"
    return bound_lines(text, MAX_TEXT_LINES)


@functools.lru_cache(maxsize=1)
def stylesheet() -> str:
    """The ``<style>`` block embedded in every HTML repr (style.css, read once)."""
    css = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
    return f"<style>{css}</style>"


def _find_renderer(obj, table: dict, generic):
    for cls in type(obj).__mro__:
        renderer = table.get(cls.__name__)
        if renderer is not None:
            return renderer
    return generic


def _type_name(obj) -> str:
    try:
        return type(obj).__name__
    except Exception:  # pragma: no cover - type() of anything has a name
        return "object"


def _exception_text(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "(unprintable message)"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _failure_html(obj, exc: BaseException) -> str:
    return (f'<div class="pyoci-failed">repr of {_e(_type_name(obj))} failed: '
            f'{_e(_exception_text(exc))}</div>')


# =========================================================================== small helpers
def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def bound_lines(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` lines, the last one saying how many were left out."""
    lines = text.splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    kept = lines[: limit - 1]
    kept.append(f"... ({len(lines) - len(kept)} more lines)")
    return "\n".join(kept)


def _cut(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def is_model(obj: Any) -> bool:
    """True for pydantic models (duck typing: no pydantic import)."""
    return isinstance(getattr(type(obj), "model_fields", None), dict) and hasattr(obj, "model_dump")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or _is_enum(value)


def _is_enum(value: Any) -> bool:
    return any(cls.__name__ == "Enum" for cls in type(value).__mro__)


def _scalar(value: Any) -> Any:
    return value.value if _is_enum(value) else value


def _field_key(name: str, info: Any) -> str:
    for attribute in ("serialization_alias", "alias"):
        alias = getattr(info, attribute, None)
        if isinstance(alias, str) and alias:
            return alias
    return name


def model_items(obj: Any) -> list[tuple[str, Any, str]]:
    """``(json_name, value, description)`` of each field of a model that is not None, in the
    model's order, then any extra fields kept as given."""
    items = []
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name, None)
        if value is None:
            continue
        items.append((_field_key(name, info), value, getattr(info, "description", None) or ""))
    extra = getattr(obj, "model_extra", None) or {}
    for key, value in extra.items():
        if value is not None:
            items.append((str(key), value, "not part of the spec's model (kept as given)"))
    return items


def field_descriptions(cls: Any) -> dict[str, str]:
    """JSON name -> description of a model class's fields (empty for anything else)."""
    fields = getattr(cls, "model_fields", None)
    if not isinstance(fields, dict):
        return {}
    return {_field_key(name, info): (getattr(info, "description", None) or "") for name, info in fields.items()}


def plain(value: Any) -> Any:
    """JSON-like data (dicts with the spec's names, lists, scalars) of a model or value."""
    if is_model(value):
        return {key: plain(item) for key, item, _ in model_items(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return _scalar(value)


def _join(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def _hover(path: str, description: str) -> str:
    """The title text of a field: the model's description, else the plain-words explanation."""
    return description or glossary.explain(path)


def _title_attr(text: str) -> str:
    return f' title="{_e(text)}"' if text else ""


def _json_compact(value: Any) -> str:
    return json.dumps(plain(value), separators=(", ", ": "), ensure_ascii=False, default=str)


# =========================================================================== value annotations
def _human_bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


_BYTE_FIELDS = {"linux.resources.memory.limit", "linux.resources.memory.reservation",
                "linux.resources.memory.swap", "linux.resources.memory.kernel",
                "linux.resources.memory.kernelTCP", "linux.resources.hugepageLimits.limit"}
_MODE_FIELDS = {"linux.devices.fileMode", "process.user.umask"}


def _annotation(path: str, value: Any) -> str:
    """A few words that make a number readable (bytes, file modes, unlimited rlimits)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    key = glossary.normalize_path(path)
    if key in _BYTE_FIELDS:
        return "unlimited" if value == -1 else _human_bytes(value)
    if key in _MODE_FIELDS:
        return oct(value).replace("0o", "0")
    if key in ("process.rlimits.soft", "process.rlimits.hard") and value == RLIM_INFINITY:
        return "unlimited"
    return ""


# =========================================================================== HTML building blocks
def _scalar_html(value: Any, path: str = "") -> str:
    value = _scalar(value)
    if value is None:
        return '<span class="pyoci-null">null</span>'
    if isinstance(value, bool):
        return f'<span class="pyoci-bool-{str(value).lower()}">{str(value).lower()}</span>'
    if isinstance(value, (int, float)):
        note = _annotation(path, value)
        extra = f' <span class="pyoci-explain">({_e(note)})</span>' if note else ""
        return f'<span class="pyoci-num">{_e(value)}</span>{extra}'
    if isinstance(value, str):
        return f'<code class="pyoci-v">{_e(_cut(value))}</code>' if value else '<span class="pyoci-null">""</span>'
    return f'<code class="pyoci-v">{_e(_cut(str(value)))}</code>'


def _truncated(items: list, render: Callable[[Any, int], str], *, joiner: str = "",
               wrap: Callable[[str], str] = lambda s: s) -> str:
    """The first ``MAX_ITEMS`` items, then the rest (up to ``MAX_RENDERED_ITEMS``) under a
    ``<details>`` saying how many, then a count of what is not rendered at all."""
    shown = joiner.join(render(item, i) for i, item in enumerate(items[:MAX_ITEMS]))
    out = wrap(shown)
    if len(items) > MAX_ITEMS:
        rest = items[MAX_ITEMS:MAX_RENDERED_ITEMS]
        hidden = joiner.join(render(item, MAX_ITEMS + i) for i, item in enumerate(rest))
        out += (f'<details><summary class="pyoci-more">{len(items) - MAX_ITEMS} more '
                f'({len(items)} in all)</summary>{wrap(hidden)}</details>')
        if len(items) > MAX_RENDERED_ITEMS:
            out += f'<div class="pyoci-more">{len(items) - MAX_RENDERED_ITEMS} more not shown</div>'
    return out


def _chips(values: list, path: str = "") -> str:
    if not values:
        return '<span class="pyoci-null">(empty)</span>'
    return _truncated(list(values), lambda v, i: f'<span class="pyoci-chip">{_e(_cut(str(_scalar(v)), 120))}</span>')


def _section(name: str, body: str, *, hover: str = "", count: str = "", brief: str = "",
             explanation: str = "", open_: bool = True) -> str:
    parts = [f'<details{" open" if open_ else ""}><summary>',
             f'<span class="pyoci-name"{_title_attr(hover)}>{_e(name)}</span>']
    if count:
        parts.append(f' <span class="pyoci-count">({_e(count)})</span>')
    if brief:
        parts.append(f'<span class="pyoci-brief">{_e(_cut(brief, 120))}</span>')
    if explanation:
        parts.append(f' <span class="pyoci-explain">&#8212; {_e(explanation)}</span>')
    parts.append(f'</summary><div class="pyoci-body">{body}</div></details>')
    return "".join(parts)


def _header(type_name: str, facts: Iterable[tuple[str, Any]], *, hover: str = "") -> str:
    parts = [f'<div class="pyoci-header"><span class="pyoci-type"{_title_attr(hover)}>{_e(type_name)}</span>']
    for label, value in facts:
        if value is None or value == "":
            continue
        if label:
            parts.append(f'<span class="pyoci-fact">{_e(label)} <b>{_e(_cut(str(value), 80))}</b></span>')
        else:
            parts.append(f'<span class="pyoci-fact"><b>{_e(_cut(str(value), 80))}</b></span>')
    parts.append("</div>")
    return "".join(parts)


def _fields_table(rows: list[tuple[str, str, str, str]]) -> str:
    """rows of (name, hover, value_html, explanation)."""
    if not rows:
        return ""
    body = "".join(
        f'<tr><th{_title_attr(hover)}>{_e(name)}</th><td>{value_html}</td>'
        f'<td class="pyoci-explain">{_e(explanation)}</td></tr>'
        for name, hover, value_html, explanation in rows)
    return f'<table class="pyoci-tbl pyoci-fields"><tbody>{body}</tbody></table>'


# =========================================================================== generic model rendering
def _is_complex(value: Any) -> bool:
    """Values shown as their own collapsible section rather than a table row."""
    if is_model(value):
        return True
    if isinstance(value, dict):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return any(not _is_scalar(v) for v in value) or len(value) > MAX_ITEMS
    return False


def _count_text(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return str(len(value))
    return ""


def node_html(value: Any, path: str, depth: int = 0) -> str:
    """The HTML of one value at JSON ``path`` (a picture when there is one for that path)."""
    special = _special(_PATH_HTML, path)
    if special is not None:
        return special(value, path, depth)
    if is_model(value):
        return model_html(value, path, depth)
    if isinstance(value, dict):
        return _dict_html(value, path, depth)
    if isinstance(value, (list, tuple)):
        if all(_is_scalar(v) for v in value):
            return _chips(list(value), path)
        if all(is_model(v) or isinstance(v, dict) for v in value):
            return records_html(list(value), path)
        return _truncated(list(value), lambda v, i: f"<div>{node_html(v, _join(path, i), depth + 1)}</div>")
    return _scalar_html(value, path)


def model_html(obj: Any, path: str, depth: int = 0) -> str:
    """A model's fields: simple ones in a table, nested ones as collapsible sections."""
    rows, sections = [], []
    for key, value, description in model_items(obj):
        child = _join(path, key)
        hover = _hover(child, description)
        explanation = glossary.explain(child)
        if _is_complex(value) or child in _SECTION_PATHS:
            sections.append(_section(
                key, node_html(value, child, depth + 1), hover=hover, count=_count_text(value),
                brief=_brief(value, child), explanation=explanation,
                open_=_open_by_default(value, child, depth)))
        else:
            rows.append((key, hover, node_html(value, child, depth + 1), explanation))
    return _fields_table(rows) + "".join(sections)


def _open_by_default(value: Any, path: str, depth: int) -> bool:
    if glossary.normalize_path(path) in _CLOSED_SECTIONS:
        return False
    size = len(value) if isinstance(value, (list, tuple, dict)) else 0
    return depth <= 1 and size <= 2 * MAX_ITEMS


#: Sections shown collapsed at first (long or rarely read).
_CLOSED_SECTIONS = {"linux.seccomp", "linux.resources.devices", "linux.devices", "process.env",
                    "hooks", "annotations", "linux.sysctl", "state.annotations"}


def _dict_html(value: dict, path: str, depth: int) -> str:
    items = list(value.items())
    if not items:
        return '<span class="pyoci-null">(empty)</span>'

    def row(item, i):
        key, v = item
        return (f'<tr><th>{_e(_cut(str(key), 120))}</th>'
                f'<td>{node_html(v, _join(path, str(key)), depth + 1)}</td></tr>')

    return _truncated(items, row, wrap=lambda rows: f'<table class="pyoci-tbl pyoci-fields"><tbody>{rows}</tbody></table>')


#: Preferred column order of record tables (others follow in the model's order).
_COLUMN_ORDER = {
    "mounts": ("destination", "type", "source", "options"),
    "process.rlimits": ("type", "soft", "hard"),
    "linux.namespaces": ("type", "path"),
    "linux.devices": ("path", "type", "major", "minor", "fileMode", "uid", "gid"),
    "linux.resources.devices": ("allow", "type", "major", "minor", "access"),
}


def records_html(items: list, path: str) -> str:
    """A table with one row per item (mounts, rlimits, namespaces, id mappings, devices ...)."""
    if not items:
        return '<span class="pyoci-null">(empty)</span>'
    rows = [plain(item) for item in items]
    descriptions = {}
    for item in items:
        descriptions.update({k: v for k, v in field_descriptions(type(item)).items() if v})
    columns: list[str] = []
    for name in _COLUMN_ORDER.get(glossary.normalize_path(path), ()):
        if any(name in row for row in rows):
            columns.append(name)
    for row in rows:
        for name in row:
            if name not in columns:
                columns.append(name)
    head = "".join(
        f'<th{_title_attr(_hover(_join(path + "[]", name), descriptions.get(name, "")))}>{_e(name)}</th>'
        for name in columns)

    def cell(value, column_path):
        if isinstance(value, list) and all(_is_scalar(v) for v in value):
            return _chips(value)
        if isinstance(value, (dict, list)):
            return f'<code class="pyoci-v">{_e(_cut(_json_compact(value)))}</code>'
        if value is None:
            return ""
        return _scalar_html(value, column_path)

    def render_row(row, i):
        return "<tr>" + "".join(f"<td>{cell(row.get(c), _join(_join(path, i), c))}</td>" for c in columns) + "</tr>"

    return _truncated(rows, render_row, wrap=lambda body: (
        f'<table class="pyoci-tbl pyoci-records"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'))


def _brief(value: Any, path: str) -> str:
    """A few words on a collapsed section's line."""
    special = _special(_PATH_BRIEF, path)
    if special is not None:
        try:
            return special(value)
        except Exception:
            return ""
    if isinstance(value, (list, tuple)) and value and all(_is_scalar(v) for v in value):
        return " ".join(str(_scalar(v)) for v in value[:6]) + (" ..." if len(value) > 6 else "")
    return ""


# =========================================================================== path-specific pictures
def capabilities_html(value: Any, path: str = "process.capabilities", depth: int = 0) -> str:
    """The capability grid: one row per capability held in any set, one column per set."""
    ALL_CAPABILITIES = _all_capabilities()
    sets = {name: [str(c) for c in (plain(value).get(name) or [])] for name in CAPABILITY_SETS}
    descriptions = field_descriptions(type(value))
    present = {c for caps in sets.values() for c in caps}
    known = [c for c in ALL_CAPABILITIES if c in present]
    unknown = sorted(present - set(ALL_CAPABILITIES))
    head = "".join(
        f'<th{_title_attr(_hover(_join(path, s), descriptions.get(s, "")))}>{_e(s)}'
        f'<br><span class="pyoci-count">{len(sets[s])}</span></th>'
        for s in CAPABILITY_SETS)
    body = []
    for cap in known + unknown:
        cells = "".join(
            '<td class="pyoci-cap-on">&#10003;</td>' if cap in sets[s] else '<td class="pyoci-cap-off">&#183;</td>'
            for s in CAPABILITY_SETS)
        title = "" if cap in ALL_CAPABILITIES else ' title="not a capability this runtime knows"'
        body.append(f'<tr><th class="pyoci-capname"{title}>{_e(cap)}</th>{cells}</tr>')
    explain_rows = "".join(
        f'<li><code class="pyoci-v">{_e(s)}</code> <span class="pyoci-explain">{_e(glossary.explain(_join(path, s)))}</span></li>'
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


def namespace_inodes(pid: int | str) -> dict[str, str | None]:
    """``{"net": "net:[4026531840]", ...}`` read from ``/proc/<pid>/ns`` (None when unreadable)."""
    result = {}
    for name in NAMESPACE_FILES.values():
        try:
            result[name] = os.readlink(f"/proc/{pid}/ns/{name}")
        except OSError:
            result[name] = None
    return result


def _config_namespace_rows(namespaces: list) -> list[tuple[str, str, str, str]]:
    wanted = {}
    for ns in plain(namespaces):
        if isinstance(ns, dict) and ns.get("type"):
            wanted[str(ns["type"])] = ns.get("path")
    rows = []
    for ns_type in NAMESPACE_FILES:
        if ns_type not in wanted:
            rows.append((ns_type, "", "", "shared"))
        elif wanted[ns_type]:
            rows.append((ns_type, "the runtime's", f"joins {_cut(str(wanted[ns_type]), 40)}", "join"))
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
        host_text = _inode_text(h)
        if h is None and c is None:
            continue  # the kernel has no such namespace type
        if c is None:
            rows.append((ns_type, host_text, "unreadable", "unknown"))
        elif h == c:
            rows.append((ns_type, host_text, host_text, "shared"))
        else:
            rows.append((ns_type, host_text, _inode_text(c), "new"))
    return rows


def _inode_text(link: str | None) -> str:
    if not link:
        return "?"
    match = re.search(r"\[(\d+)\]", link)
    return f"inode {match.group(1)}" if match else link


def namespaces_html(value: Any, path: str = "linux.namespaces", depth: int = 0) -> str:
    """``linux.namespaces`` of a config: host vs container picture (new, joined by path, or shared
    with the runtime when the type is not listed -- config-linux.md), then the list as given."""
    items = list(value or [])
    picture = svg.namespaces_svg(_config_namespace_rows(items), container_label="container (config)")
    listed = _section("as listed", records_html(items, path), count=str(len(items)), open_=False,
                      explanation="in the config's order")
    return picture + listed


def _namespaces_brief(value: Any) -> str:
    return " ".join(str(ns.get("type")) + ("(path)" if ns.get("path") else "") for ns in plain(value))


def _env_html(value: Any, path: str = "process.env", depth: int = 0) -> str:
    entries = [str(v) for v in (value or [])]

    def row(entry, i):
        name, sep, val = entry.partition("=")
        shown = _scalar_html(val) if sep else '<span class="pyoci-bad">no "=": not KEY=value</span>'
        return f'<tr><th>{_e(_cut(name, 80))}</th><td>{shown}</td></tr>'

    if not entries:
        return '<span class="pyoci-null">(empty)</span>'
    return _truncated(entries, row, wrap=lambda body: f'<table class="pyoci-tbl pyoci-fields"><tbody>{body}</tbody></table>')


def _env_brief(value: Any) -> str:
    return " ".join(str(v).partition("=")[0] for v in list(value)[:8]) + (" ..." if len(value) > 8 else "")


def _args_html(value: Any, path: str = "process.args", depth: int = 0) -> str:
    args = [str(a) for a in (value or [])]
    return f'<code class="pyoci-v">{_e(_cut(shlex.join(args)))}</code>' if args else '<span class="pyoci-null">(none)</span>'


def seccomp_html(value: Any, path: str = "linux.seccomp", depth: int = 0) -> str:
    """``linux.seccomp``: the default action, architectures and flags, then the rules (action,
    system call names, argument conditions that must all match)."""
    data = plain(value)
    rows = []
    descriptions = field_descriptions(type(value))
    for key in ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata"):
        if key in data:
            child = _join(path, key)
            v = data[key]
            shown = _chips(v) if isinstance(v, list) else _scalar_html(v, child)
            rows.append((key, _hover(child, descriptions.get(key, "")), shown, glossary.explain(child)))
    rules = data.get("syscalls") or []

    def rule_row(rule, i):
        names = rule.get("names") or []
        args = rule.get("args")
        cond = _e(_cut(_json_compact(args), 160)) if args else ""
        errno = f' errnoRet {_e(rule["errnoRet"])}' if rule.get("errnoRet") is not None else ""
        return (f'<tr><td>{_e(rule.get("action", ""))}{errno}</td><td>{_chips(names)}</td>'
                f'<td><code class="pyoci-v">{cond}</code></td></tr>')

    table = ""
    rule_descriptions = field_descriptions(type((getattr(value, "syscalls", None) or [None])[0]))

    def th(key: str, label: str) -> str:
        return f'<th{_title_attr(rule_descriptions.get(key, ""))}>{_e(label)}</th>'

    if rules:
        table = _section("syscalls", _truncated(rules, rule_row, wrap=lambda body: (
            f'<table class="pyoci-tbl pyoci-records"><thead><tr>{th("action", "action")}{th("names", "names (system calls)")}'
            f'{th("args", "args (all must match)")}</tr>'
            f'</thead><tbody>{body}</tbody></table>')), count=str(len(rules)),
            brief=f"{sum(len(r.get('names') or []) for r in rules)} system calls named",
            explanation=glossary.explain(_join(path, "syscalls")), open_=False,
            hover=descriptions.get("syscalls", ""))
    return _fields_table(rows) + table


def _seccomp_brief(value: Any) -> str:
    data = plain(value)
    return f"default {data.get('defaultAction')} · {len(data.get('syscalls') or [])} rules"


def _process_brief(value: Any) -> str:
    data = plain(value)
    user = data.get("user") or {}
    parts = [shlex.join(str(a) for a in data.get("args") or [])]
    if user:
        parts.append(f"uid {user.get('uid')} gid {user.get('gid')}")
    return " · ".join(p for p in parts if p)


def _mounts_brief(value: Any) -> str:
    return " ".join(str(m.get("destination")) for m in plain(value)[:8]) + (" ..." if len(value) > 8 else "")


_PATH_HTML: dict[str, Callable[[Any, str, int], str]] = {
    "process.capabilities": capabilities_html,
    "process.env": _env_html,
    "process.args": _args_html,
    "linux.namespaces": namespaces_html,
    "linux.seccomp": seccomp_html,
}

#: Paths whose picture gets a section of its own even when the value is small.
_SECTION_PATHS = {"process.capabilities", "process.env", "linux.namespaces", "linux.seccomp"}

_PATH_BRIEF: dict[str, Callable[[Any], str]] = {
    "process": _process_brief,
    "process.capabilities": _capabilities_brief,
    "process.env": _env_brief,
    "linux.namespaces": _namespaces_brief,
    "linux.seccomp": _seccomp_brief,
    "mounts": _mounts_brief,
}


# =========================================================================== where a part sits in a Spec
@functools.lru_cache(maxsize=None)
def _class_paths() -> dict[type, str]:
    """Model class -> the JSON path where it sits (Spec's parts, State, Features), found by
    walking the annotations of the spec models; shallowest path wins."""
    spec_module = sys.modules.get("pyoci_nb.spec")
    if spec_module is None:
        try:
            import pyoci_nb.spec as spec_module  # only reached when rendering a pydantic model
        except Exception:
            return {}
    paths: dict[type, str] = {}
    queue: list[tuple[type, str]] = []
    for root_name, prefix in (("Spec", ""), ("State", "state"), ("Features", "features")):
        cls = getattr(spec_module, root_name, None)
        if cls is not None:
            paths[cls] = prefix
            queue.append((cls, prefix))
    while queue:
        cls, prefix = queue.pop(0)
        for name, info in getattr(cls, "model_fields", {}).items():
            for child, container in _model_classes_in(info.annotation):
                if child not in paths:
                    # an item of a list is "mounts[]", a value of a map "linux.timeOffsets[]"
                    paths[child] = _join(prefix, _field_key(name, info)) + ("[]" if container else "")
                    queue.append((child, paths[child]))
    return paths


def _model_classes_in(annotation: Any, container: bool = False) -> list[tuple[type, bool]]:
    """The model classes inside an annotation, each with whether it sits in a list or dict."""
    found = []
    if isinstance(annotation, type) and isinstance(getattr(annotation, "model_fields", None), dict):
        found.append((annotation, container))
    inside = container or typing.get_origin(annotation) in (list, dict, tuple, set)
    for arg in typing.get_args(annotation):
        found.extend(_model_classes_in(arg, inside))
    return found


def _special(table: dict, path: str):
    """The path-specific renderer for ``path``; items of lists (``mounts[3]``) have none, so a
    single Mount is not drawn as the mounts table."""
    if path.endswith("]"):
        return None
    return table.get(glossary.normalize_path(path))


def path_of(obj: Any) -> str:
    """The JSON path where a part of a Spec sits (``Process`` -> ``process``), "" if unknown."""
    try:
        return _class_paths().get(type(obj), "")
    except Exception:
        return ""


# =========================================================================== generic renderers
def _generic_html(obj: Any) -> str:
    if is_model(obj):
        path = path_of(obj)
        items = model_items(obj)
        facts = [("", path)] if path and path != _type_name(obj).lower() else []
        facts.append(("", _plural(len(items), "field")))
        hover = glossary.explain(path) if path else ""
        return _header(_type_name(obj), facts, hover=hover) + node_html(obj, path, 0)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        rows = [(f.name, "", node_html(getattr(obj, f.name), f.name, 1), "")
                for f in dataclasses.fields(obj)]
        return _header(_type_name(obj), []) + _fields_table(rows)
    if isinstance(obj, (dict, list, tuple)):
        return _header(_type_name(obj), [("", _plural(len(obj), "item"))]) + node_html(obj, "", 0)
    return f'<pre class="pyoci-pre">{_e(_cut(repr(obj), 4 * MAX_STRING))}</pre>'


def _generic_text(obj: Any) -> str:
    if is_model(obj):
        path = path_of(obj)
        head = f"{_type_name(obj)}" + (f" ({path})" if path and path != _type_name(obj).lower() else "")
        return "\n".join([head] + node_text(obj, path, 1))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        lines = [_type_name(obj)]
        for f in dataclasses.fields(obj):
            lines.extend(_keyed_text(f.name, getattr(obj, f.name), f.name, 1))
        return "\n".join(lines)
    return _cut(repr(obj), 4 * MAX_STRING)


# =========================================================================== text building blocks
_INDENT = "  "


def _scalar_text(value: Any, path: str = "") -> str:
    value = _scalar(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(_cut(value, 160), ensure_ascii=False) if (not value or value != value.strip()
                                                                      or any(ch in value for ch in "\n\t:#"))\
            else _cut(value, 160)
    note = _annotation(path, value)
    return f"{value} ({note})" if note else str(value)


def _inline_list(values: list, limit: int = 10) -> str:
    shown = ", ".join(_scalar_text(v) for v in values[:limit])
    more = f", ... {len(values) - limit} more" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _record_line(record: Any) -> str:
    data = plain(record)
    if not isinstance(data, dict):
        return _scalar_text(data)
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and all(_is_scalar(v) for v in value):
            parts.append(f"{key}={','.join(str(v) for v in value[:12])}" + (",..." if len(value) > 12 else ""))
        elif isinstance(value, (dict, list)):
            parts.append(f"{key}={_cut(_json_compact(value), 60)}")
        else:
            parts.append(f"{key}={_scalar_text(value)}")
    return _cut(" ".join(parts), 160)


def node_text(value: Any, path: str, level: int) -> list[str]:
    """The lines (indented ``level`` steps) showing a value's contents."""
    special = _special(_PATH_TEXT, path)
    if special is not None:
        return [_INDENT * level + line for line in special(value)]
    pad = _INDENT * level
    if is_model(value):
        lines = []
        for key, item, _ in model_items(value):
            lines.extend(_keyed_text(key, item, _join(path, key), level))
        return lines
    if isinstance(value, dict):
        lines = []
        items = list(value.items())
        for key, item in items[:MAX_ITEMS]:
            lines.extend(_keyed_text(str(key), item, _join(path, str(key)), level))
        if len(items) > MAX_ITEMS:
            lines.append(f"{pad}... {len(items) - MAX_ITEMS} more")
        return lines
    if isinstance(value, (list, tuple)):
        lines = [f"{pad}- {_record_line(item)}" for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            lines.append(f"{pad}... {len(value) - MAX_ITEMS} more ({len(value)} in all)")
        return lines
    return [pad + _scalar_text(value, path)]


def _keyed_text(key: str, value: Any, path: str, level: int) -> list[str]:
    pad = _INDENT * level
    special = _special(_PATH_TEXT, path)
    if special is not None:
        lines = special(value)
        if len(lines) == 1:
            return [f"{pad}{key}: {lines[0]}"]
        return [f"{pad}{key}:"] + [pad + _INDENT + line for line in lines]
    if _is_scalar(value):
        return [f"{pad}{key}: {_scalar_text(value, path)}"]
    if isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        return [f"{pad}{key}: {_inline_list(list(value))}"]
    if isinstance(value, (list, tuple, dict)) and not value:
        return [f"{pad}{key}: {'[]' if isinstance(value, (list, tuple)) else '{}'}"]
    if level >= 2 and (is_model(value) or isinstance(value, dict)) and _flat(value):
        return [f"{pad}{key}: {_record_line(value)}"]  # a small record of scalars: one line
    count = f" ({len(value)})" if isinstance(value, (list, tuple, dict)) else ""
    return [f"{pad}{key}{count}:"] + node_text(value, path, level + 1)


def _flat(value: Any) -> bool:
    data = plain(value)
    return isinstance(data, dict) and all(
        _is_scalar(v) or (isinstance(v, list) and all(_is_scalar(x) for x in v)) for v in data.values())


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


def _table_text(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def mounts_text(value: Any) -> list[str]:
    """The mounts as aligned columns: destination, type, source, options (in mount order)."""
    mounts = plain(value)
    rows = [[_cut(str(m.get("destination", "")), 50), str(m.get("type", "")), _cut(str(m.get("source", "")), 50),
             _cut(",".join(str(o) for o in m.get("options") or []), 70)] for m in mounts[:MAX_ITEMS * 2]]
    lines = _table_text(rows) if rows else ["[]"]
    if len(mounts) > MAX_ITEMS * 2:
        lines.append(f"... {len(mounts) - MAX_ITEMS * 2} more ({len(mounts)} in all)")
    return lines


def _namespaces_text(value: Any) -> list[str]:
    parts = [f"{ns.get('type')}" + (f"={ns.get('path')}" if ns.get("path") else "") for ns in plain(value)]
    return [" ".join(parts) or "[]"]


def _args_text(value: Any) -> list[str]:
    return [_cut(shlex.join(str(a) for a in value or []), 160) or "[]"]


def _seccomp_text(value: Any) -> list[str]:
    data = plain(value)
    rules = data.get("syscalls") or []
    lines = [f"defaultAction: {data.get('defaultAction')}"]
    if data.get("architectures"):
        lines.append(f"architectures: {_inline_list(data['architectures'], 6)}")
    lines.append(f"syscalls ({len(rules)} rules):")
    for rule in rules[:8]:
        names = rule.get("names") or []
        lines.append(f"  {rule.get('action')}: {' '.join(names[:8])}" + (f" ... {len(names) - 8} more" if len(names) > 8 else "")
                     + (" (with argument conditions)" if rule.get("args") else ""))
    if len(rules) > 8:
        lines.append(f"  ... {len(rules) - 8} more rules")
    return lines


def _hooks_text(value: Any) -> list[str]:
    lines = []
    for kind, hooks in plain(value).items():
        if isinstance(hooks, list):
            shown = "; ".join(_cut(shlex.join([str(h.get("path"))] + [str(a) for a in (h.get("args") or [])[1:]]), 60)
                              + (f" (timeout {h['timeout']}s)" if h.get("timeout") else "") for h in hooks[:4])
            lines.append(f"{kind} ({len(hooks)}): {shown}" + (" ..." if len(hooks) > 4 else ""))
        else:
            lines.append(f"{kind}: {_cut(_json_compact(hooks), 100)}")
    return lines or ["{}"]


def _id_mappings_text(value: Any) -> list[str]:
    maps = plain(value)
    return [", ".join(f"{m.get('containerID')}->{m.get('hostID')} ({m.get('size')})" for m in maps[:8])
            + (" ..." if len(maps) > 8 else "") or "[]"]


_PATH_TEXT: dict[str, Callable[[Any], list[str]]] = {
    "hooks": _hooks_text,
    "linux.uidMappings": _id_mappings_text,
    "linux.gidMappings": _id_mappings_text,
    "process.capabilities": capabilities_text,
    "process.args": _args_text,
    "mounts": mounts_text,
    "linux.namespaces": _namespaces_text,
    "linux.seccomp": _seccomp_text,
}


# =========================================================================== Spec
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
    return _header(_type_name(spec), _spec_facts(spec),
                   hover="config.json: the container's configuration (runtime-spec config.md)") + model_html(spec, "", 0)


def spec_text(spec: Any) -> str:
    """A Spec as text: a line of key facts, then every part (YAML-like, bounded)."""
    facts = ", ".join(f"{k} {v}" for k, v in _spec_facts(spec) if v not in (None, ""))
    return "\n".join([f"{_type_name(spec)}: {facts}"] + node_text(spec, "", 1))


register("Spec", html=spec_html, text=spec_text)


# =========================================================================== State
def state_html(state: Any) -> str:
    """The state (runtime.md): lifecycle picture with the status lit, then the fields."""
    data = plain(state)
    facts = [("", data.get("id")), ("status", data.get("status")), ("pid", data.get("pid")),
             ("bundle", data.get("bundle"))]
    rows = _state_rows(state, data)
    return (_header(_type_name(state), facts, hover="the state of a container (runtime-spec runtime.md)")
            + svg.lifecycle_svg(data.get("status")) + rows)


def _state_rows(state: Any, data: dict) -> str:
    if is_model(state):
        return model_html(state, "state", 0)
    rows, sections = [], []
    for key, value in data.items():
        path = _join("state", key)
        if isinstance(value, dict) and value:
            sections.append(_section(key, _dict_html(value, path, 1), count=str(len(value)),
                                     explanation=glossary.explain(path), open_=False))
        else:
            rows.append((key, glossary.explain(path), node_html(value, path, 1), glossary.explain(path)))
    return _fields_table(rows) + "".join(sections)


def state_text(state: Any) -> str:
    """The state as text: id and status, then the fields."""
    data = plain(state)
    head = f"{_type_name(state)}: {data.get('id')} {data.get('status')}"
    return "\n".join([head] + node_text(data, "state", 1))


register("State", html=state_html, text=state_text)


# =========================================================================== validation
def _problem_parts(problem: Any) -> tuple[str, str, Any]:
    return (str(getattr(problem, "path", "") or ""), str(getattr(problem, "message", problem)),
            getattr(problem, "value", None))


def report_html(report: Any) -> str:
    """A validation report: ok, or a table of problems (JSON path, rule, value)."""
    problems = list(getattr(report, "problems", []) or [])
    source = getattr(report, "source", None)
    if not problems:
        verdict = '<span class="pyoci-ok">&#10003; valid</span>'
        body = ""
    else:
        verdict = f'<span class="pyoci-bad">&#10007; {_e(_plural(len(problems), "problem"))}</span>'

        def row(problem, i):
            path, message, value = _problem_parts(problem)
            shown = "" if value is None else f'<code class="pyoci-v">{_e(_cut(_json_compact(value), 160))}</code>'
            return (f'<tr><td><code class="pyoci-v">{_e(path or "(config)")}</code></td>'
                    f'<td>{_e(_cut(message, 600))}</td><td>{shown}</td></tr>')

        body = _truncated(problems, row, wrap=lambda rows: (
            '<table class="pyoci-tbl pyoci-records"><thead><tr><th>where</th><th>rule broken</th><th>value</th></tr>'
            f'</thead><tbody>{rows}</tbody></table>'))
    head = (f'<div class="pyoci-header"><span class="pyoci-type">{_e(_type_name(report))}</span>'
            f'{verdict}' + (f'<span class="pyoci-fact">{_e(source)}</span>' if source else "") + "</div>")
    return head + body


def report_text(report: Any) -> str:
    """``valid``, or one line per problem: ``<JSON path>: <rule broken>``."""
    problems = list(getattr(report, "problems", []) or [])
    source = getattr(report, "source", None) or "config"
    if not problems:
        return f"{_type_name(report)}: {source}: valid"
    lines = [f"{_type_name(report)}: {source}: {_plural(len(problems), 'problem')}"]
    for problem in problems[:MAX_TEXT_LINES - 2]:
        path, message, _ = _problem_parts(problem)
        lines.append(f"  {path or '(config)'}: {_cut(message, 200)}")
    if len(problems) > MAX_TEXT_LINES - 2:
        lines.append(f"  ... {len(problems) - (MAX_TEXT_LINES - 2)} more problems")
    return "\n".join(lines)


def problem_html(problem: Any) -> str:
    """One problem: where (JSON path), the rule broken, the offending value."""
    path, message, value = _problem_parts(problem)
    rows = [("where", "JSON path of the offending value", f'<code class="pyoci-v">{_e(path or "(config)")}</code>', ""),
            ("rule", "the rule it breaks and what to do", _e(_cut(message, 600)), "")]
    if value is not None:
        rows.append(("value", "the offending value", f'<code class="pyoci-v">{_e(_cut(_json_compact(value)))}</code>', ""))
    return _header(_type_name(problem), [("", path or "(config)")]) + _fields_table(rows)


def problem_text(problem: Any) -> str:
    """One problem as ``<type>: <JSON path>: <rule>`` (and the value)."""
    path, message, value = _problem_parts(problem)
    text = f"{_type_name(problem)}: {path or '(config)'}: {_cut(message, 400)}"
    if value is not None:
        text += f"\n  value: {_cut(_json_compact(value), 200)}"
    return text


register("ValidationReport", html=report_html, text=report_text)
register("Problem", html=problem_html, text=problem_text)


# =========================================================================== spec diff
_DIFF_KINDS = {"added": "+", "add": "+", "removed": "-", "remove": "-", "changed": "~", "change": "~",
               "replace": "~", "modified": "~"}


def diff_entries(diff: Any) -> list[tuple[str, str, Any, Any]]:
    """``(mark, path, old, new)`` of each difference, mark being ``+`` (only in the new spec),
    ``-`` (only in the old one) or ``~`` (changed).  Duck-typed over the SpecDiff model:
    an iterable (or ``.changes``/``.entries``/``.items``) of entries with ``path``, ``old``,
    ``new`` and optionally ``kind``/``op``."""
    entries = None
    for attribute in ("changes", "entries", "differences"):
        candidate = getattr(diff, attribute, None)
        if candidate is not None and not callable(candidate):
            entries = candidate
            break
    if entries is None:
        entries = list(diff)
    missing = _missing_marker(diff)
    result = []
    for entry in entries:
        data = entry if isinstance(entry, dict) else {k: getattr(entry, k, None) for k in
                                                        ("path", "old", "new", "kind", "op", "change")}
        path = str(data.get("path") or "")
        old, new = data.get("old"), data.get("new")
        kind = data.get("kind") or data.get("op") or data.get("change")
        kind = str(_scalar(kind)).lower() if kind is not None else ""
        mark = _DIFF_KINDS.get(kind)
        if mark is None:
            mark = "+" if _absent(old, missing) else "-" if _absent(new, missing) else "~"
        result.append((mark, path, old, new))
    return result


def _missing_marker(diff: Any) -> Any:
    return getattr(type(diff), "MISSING", None)


def _absent(value: Any, missing: Any) -> bool:
    return value is None or (missing is not None and value is missing)


def _diff_labels(diff: Any) -> tuple[str, str]:
    return (str(getattr(diff, "old_label", None) or getattr(diff, "left_label", None) or "before"),
            str(getattr(diff, "new_label", None) or getattr(diff, "right_label", None) or "after"))


def diff_html(diff: Any) -> str:
    """A spec diff: one row per JSON path, removed in red, added in green, changed in both."""
    entries = diff_entries(diff)
    old_label, new_label = _diff_labels(diff)
    counts = {m: sum(1 for e in entries if e[0] == m) for m in "+-~"}
    facts = [("", f"{old_label} \u2192 {new_label}"), ("changed", counts["~"]), ("added", counts["+"]),
             ("removed", counts["-"])]
    if not entries:
        return _header(_type_name(diff), facts[:1]) + '<div class="pyoci-ok">no differences</div>'
    css = {"+": "pyoci-diff-add", "-": "pyoci-diff-remove", "~": "pyoci-diff-change"}

    def show(value):
        if _absent(value, _missing_marker(diff)):
            return ""
        return f'<code class="pyoci-v">{_e(_cut(_json_compact(value), 200))}</code>'

    def row(entry, i):
        mark, path, old, new = entry
        hover = _title_attr(glossary.explain(path))
        return (f'<tr class="{css[mark]}"><td class="pyoci-mark">{_e(mark)}</td>'
                f'<td><code class="pyoci-v"{hover}>{_e(path)}</code></td>'
                f'<td class="pyoci-old">{show(old)}</td><td class="pyoci-new">{show(new)}</td></tr>')

    table = _truncated(entries, row, wrap=lambda rows: (
        f'<table class="pyoci-tbl pyoci-records"><thead><tr><th></th><th>path</th><th>{_e(old_label)}</th>'
        f'<th>{_e(new_label)}</th></tr></thead><tbody>{rows}</tbody></table>'))
    return _header(_type_name(diff), facts) + table


def diff_text(diff: Any) -> str:
    """Unified-diff-like lines that read in a terminal: ``- path: old`` / ``+ path: new``."""
    entries = diff_entries(diff)
    old_label, new_label = _diff_labels(diff)
    if not entries:
        return f"{_type_name(diff)}: no differences ({old_label} -> {new_label})"
    counts = {m: sum(1 for e in entries if e[0] == m) for m in "+-~"}
    lines = [f"{_type_name(diff)}: {counts['~']} changed, {counts['+']} added, {counts['-']} removed",
             f"--- {old_label}", f"+++ {new_label}"]
    missing = _missing_marker(diff)
    for mark, path, old, new in entries:
        if mark in "-~" and not _absent(old, missing):
            lines.append(f"- {path}: {_cut(_json_compact(old), 150)}")
        if mark in "+~" and not _absent(new, missing):
            lines.append(f"+ {path}: {_cut(_json_compact(new), 150)}")
    return "\n".join(lines)


register("SpecDiff", html=diff_html, text=diff_text)


# =========================================================================== run / exec results
def _output_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _args_of(result: Any) -> str:
    args = getattr(result, "args", None)
    if isinstance(args, (list, tuple)):
        return shlex.join(str(a) for a in args)
    return "" if args is None else str(args)


def run_result_html(result: Any) -> str:
    """The result of run()/exec(): exit status, the command, and its output."""
    code = getattr(result, "returncode", None)
    if code is None:
        verdict = '<span class="pyoci-warn">no exit status</span>'
    elif code == 0:
        verdict = '<span class="pyoci-ok">exit 0</span>'
    elif code < 0 or code > 128:
        signal_number = -code if code < 0 else code - 128
        verdict = f'<span class="pyoci-bad">exit {_e(code)} (signal {_e(signal_number)})</span>'
    else:
        verdict = f'<span class="pyoci-bad">exit {_e(code)}</span>'
    facts = "".join(f'<span class="pyoci-fact">{_e(label)} <b>{_e(_cut(str(value), 100))}</b></span>'
                    for label, value in (("args", _args_of(result)), ("id", getattr(result, "id", None)))
                    if value)
    head = (f'<div class="pyoci-header"><span class="pyoci-type">{_e(_type_name(result))}</span>'
            f'{verdict}{facts}</div>')
    sections = []
    for name in ("stdout", "stderr"):
        text = _output_text(getattr(result, name, None))
        if text is None:
            continue
        lines = text.splitlines()
        shown = "\n".join(lines[:MAX_OUTPUT_LINES])
        more = (f'<div class="pyoci-more">{len(lines) - MAX_OUTPUT_LINES} more lines '
                f'({len(lines)} in all)</div>') if len(lines) > MAX_OUTPUT_LINES else ""
        body = f'<pre class="pyoci-pre">{_e(shown)}</pre>{more}' if text else '<span class="pyoci-null">(empty)</span>'
        sections.append(_section(name, body, count=_plural(len(lines), "line"), open_=bool(text)))
    if not sections:
        sections.append('<div class="pyoci-explain">output was not captured (capture_output=False)</div>')
    return head + "".join(sections)


def run_result_text(result: Any) -> str:
    """Exit status and command, then the first lines of stdout and stderr."""
    code = getattr(result, "returncode", None)
    lines = [f"{_type_name(result)}: exit {code}" + (f", args {_cut(_args_of(result), 120)}" if _args_of(result) else "")]
    for name in ("stdout", "stderr"):
        text = _output_text(getattr(result, name, None))
        if text is None:
            continue
        out = text.splitlines()
        lines.append(f"{name} ({_plural(len(out), 'line')}):" if out else f"{name}: (empty)")
        lines.extend(f"  {_cut(line, 200)}" for line in out[:20])
        if len(out) > 20:
            lines.append(f"  ... {len(out) - 20} more lines")
    return "\n".join(lines)


register("CompletedContainer", "CompletedProcess", html=run_result_html, text=run_result_text)


# =========================================================================== Container
def _container_state(container: Any) -> tuple[dict | None, str]:
    try:
        state = container.state()
    except Exception as exc:
        return None, _exception_text(exc)
    return plain(state) if not isinstance(state, dict) else state, ""


def container_html(container: Any) -> str:
    """A container: id, status, pid, the lifecycle with the status lit, the namespaces of its
    process next to this process's (inode numbers from /proc/<pid>/ns), and its state."""
    state, error = _container_state(container)
    cid = getattr(container, "id", None)
    if state is None:
        return (_header(_type_name(container), [("", cid)])
                + f'<div class="pyoci-failed">state unavailable: {_e(error)}</div>')
    status = state.get("status")
    pid = state.get("pid")
    facts = [("", cid), ("status", status), ("pid", pid), ("bundle", state.get("bundle"))]
    parts = [_header(_type_name(container), facts, hover="an OCI container (runtime-spec runtime.md)"),
             svg.lifecycle_svg(status)]
    if pid and status in ("created", "running", "paused"):
        rows = namespace_rows_for_pid(pid)
        if rows:
            parts.append(_section("namespaces", svg.namespaces_svg(rows, container_label=f"container (pid {pid})"),
                                  count=str(sum(1 for r in rows if r[3] == "new")) + " of its own",
                                  explanation="inode numbers read from /proc/<pid>/ns: equal means shared"))
    parts.append(_section("state", _state_rows(state, state), count=str(len(state)),
                          explanation="what `pyoci state` prints", open_=True))
    return "".join(parts)


def container_text(container: Any) -> str:
    """A container as text: id, status, pid, then its state."""
    state, error = _container_state(container)
    cid = getattr(container, "id", None)
    if state is None:
        return f"{_type_name(container)} {cid}: state unavailable: {error}"
    lines = [f"{_type_name(container)} {cid}: {state.get('status')}"
             + (f", pid {state.get('pid')}" if state.get("pid") else "")]
    lines.extend(node_text(state, "state", 1))
    return "\n".join(lines)


register("Container", html=container_html, text=container_text)


# =========================================================================== Bundle
def _rootfs_of(bundle: Any) -> Path:
    """The bundle's root filesystem (``Bundle.rootfs_path``: root.path resolved against the
    bundle); raises what it raises (e.g. BundleError when root.path is not set)."""
    return Path(bundle.rootfs_path)


def as_report(result: Any, source: str | None = None) -> Any:
    """A ``ValidationReport`` from what a validation returned (a report, or a list of problems)."""
    if hasattr(result, "problems"):
        return result
    from pyoci_nb.spec.problems import ValidationReport  # standard library only

    return ValidationReport(list(result or []), source=source)


def rootfs_entries(rootfs: Path) -> list[str]:
    """Sorted top-level names of a root filesystem, directories with a trailing ``/``."""
    names = []
    with os.scandir(rootfs) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            names.append(entry.name + ("/" if is_dir else ""))
    return sorted(names)


def bundle_html(bundle: Any) -> str:
    """A bundle: its path, the root filesystem's top level, the config and its validation."""
    path = getattr(bundle, "path", None)
    parts = []
    rootfs = ""
    try:
        rootfs = _rootfs_of(bundle)
        entries = rootfs_entries(rootfs)
        rootfs_body = _chips(entries)
        rootfs_count = str(len(entries))
    except Exception as exc:
        rootfs_body = f'<div class="pyoci-failed">{_e(_exception_text(exc))}</div>'
        rootfs_count = "unreadable"
    try:
        report = as_report(bundle.validate(), "config.json")
        problems = list(getattr(report, "problems", []) or [])
        verdict = "valid" if not problems else _plural(len(problems), "problem")
        report_body = report_html(report)
    except Exception as exc:
        verdict, report_body = "not validated", f'<div class="pyoci-failed">{_e(_exception_text(exc))}</div>'
    try:
        spec = bundle.spec
        spec_body = spec_html(spec) if spec is not None else '<span class="pyoci-null">(no config)</span>'
    except Exception as exc:
        spec_body = f'<div class="pyoci-failed">config.json unreadable: {_e(_exception_text(exc))}</div>'
    parts.append(_header(_type_name(bundle), [("", path), ("config", verdict)],
                         hover="an OCI bundle: config.json and the root filesystem (runtime-spec bundle.md)"))
    parts.append(_section("rootfs", rootfs_body, count=rootfs_count, brief=str(rootfs or ""),
                          explanation="the container's root filesystem (top level)", open_=True))
    parts.append(_section("config.json", spec_body, explanation="the container's configuration", open_=False))
    parts.append(_section("validation", report_body, brief=verdict, open_=verdict != "valid"))
    return "".join(parts)


def bundle_text(bundle: Any) -> str:
    """A bundle as text: path, rootfs top level, validation, then the config."""
    path = getattr(bundle, "path", None)
    lines = [f"{_type_name(bundle)}: {path}"]
    try:
        entries = rootfs_entries(_rootfs_of(bundle))
        lines.append(f"  rootfs ({len(entries)}): {_inline_list(entries, 12)}")
    except Exception as exc:
        lines.append(f"  rootfs: unreadable: {_exception_text(exc)}")
    try:
        report = as_report(bundle.validate(), "config.json")
        lines.extend("  " + line for line in report_text(report).splitlines())
    except Exception as exc:
        lines.append(f"  validation failed: {_exception_text(exc)}")
    try:
        spec = bundle.spec
        lines.extend("  " + line for line in spec_text(spec).splitlines()[:MAX_TEXT_LINES // 2])
    except Exception as exc:
        lines.append(f"  config.json unreadable: {_exception_text(exc)}")
    return "\n".join(lines)


register("Bundle", html=bundle_html, text=bundle_text)


# =========================================================================== host probe
def probe_html(result: Any) -> str:
    """The host probe: can containers run here, then one row per check (why and fix for failures)."""
    checks = list(getattr(result, "checks", []) or [])
    try:
        summary = result.summary()
        can_run = bool(result.can_run_containers)
    except Exception as exc:
        summary, can_run = f"summary unavailable: {_exception_text(exc)}", False
    verdict = (f'<span class="pyoci-ok">&#10003; {_e(summary)}</span>' if can_run
               else f'<span class="pyoci-bad">&#10007; {_e(summary)}</span>')
    head = f'<div class="pyoci-header"><span class="pyoci-type">{_e(_type_name(result))}</span>{verdict}</div>'

    def row(check, i):
        ok = bool(getattr(check, "ok", False))
        mark = '<span class="pyoci-ok">ok</span>' if ok else '<span class="pyoci-bad">missing</span>'
        detail = _e(_cut(str(getattr(check, "detail", "") or ""), 200))
        why = "" if ok else _e(_cut(str(getattr(check, "why", "") or ""), 400))
        fix = "" if ok else _e(_cut(str(getattr(check, "fix", "") or ""), 400))
        return (f'<tr><td>{mark}</td><td><code class="pyoci-v">{_e(getattr(check, "name", ""))}</code></td>'
                f'<td>{detail}</td><td>{why}</td><td>{fix}</td></tr>')

    table = _truncated(checks, row, wrap=lambda rows: (
        '<table class="pyoci-tbl pyoci-records"><thead><tr><th></th><th>check</th><th>detail</th><th>why</th>'
        f'<th>fix</th></tr></thead><tbody>{rows}</tbody></table>'))
    context = getattr(result, "context", None) or {}
    extra = _section("context", _dict_html(context, "", 1), count=str(len(context)), open_=False) if context else ""
    return head + table + extra


def probe_text(result: Any) -> str:
    """The host probe as text: the verdict, one line per check, why and fix under failures."""
    checks = list(getattr(result, "checks", []) or [])
    try:
        summary = result.summary()
    except Exception as exc:
        summary = f"summary unavailable: {_exception_text(exc)}"
    lines = [f"{_type_name(result)}: {summary}"]
    for check in checks:
        ok = bool(getattr(check, "ok", False))
        lines.append(f"  {'ok     ' if ok else 'MISSING'} {getattr(check, 'name', '')}"
                     + (f": {_cut(str(getattr(check, 'detail', '') or ''), 100)}" if ok and getattr(check, "detail", "") else ""))
        if not ok:
            lines.append(f"      why: {_cut(str(getattr(check, 'why', '') or ''), 200)}")
            lines.append(f"      fix: {_cut(str(getattr(check, 'fix', '') or ''), 200)}")
    return "\n".join(lines)


register("ProbeResult", html=probe_html, text=probe_text)
