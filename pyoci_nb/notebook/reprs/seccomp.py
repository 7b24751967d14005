"""``linux.seccomp``: the default action, architectures and flags, then the rules (action,
system call names, argument conditions that must all match)."""

from __future__ import annotations

from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.blocks import (
    chips,
    fields_table,
    records_wrap,
    scalar_html,
    section,
    title_attr,
    truncated,
)
from pyoci_nb.notebook.reprs.common import cut, esc
from pyoci_nb.notebook.reprs.paths import register_path
from pyoci_nb.notebook.reprs.tree_text import inline_list
from pyoci_nb.notebook.reprs.values import field_descriptions, hover_text, join_path, json_compact, plain


def seccomp_html(value: Any, path: str = "linux.seccomp", depth: int = 0) -> str:
    """``linux.seccomp``: the default action, architectures and flags, then the rules (action,
    system call names, argument conditions that must all match)."""
    data = plain(value)
    rows = []
    descriptions = field_descriptions(type(value))
    for key in ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata"):
        if key in data:
            child = join_path(path, key)
            v = data[key]
            shown = chips(v) if isinstance(v, list) else scalar_html(v, child)
            rows.append((key, hover_text(child, descriptions.get(key, "")), shown, glossary.explain(child)))
    rules = data.get("syscalls") or []

    def rule_row(rule, i):
        names = rule.get("names") or []
        args = rule.get("args")
        cond = esc(cut(json_compact(args), 160)) if args else ""
        errno = f' errnoRet {esc(rule["errnoRet"])}' if rule.get("errnoRet") is not None else ""
        return (f'<tr><td>{esc(rule.get("action", ""))}{errno}</td><td>{chips(names)}</td>'
                f'<td><code class="pyoci-v">{cond}</code></td></tr>')

    table = ""
    rule_descriptions = field_descriptions(type((getattr(value, "syscalls", None) or [None])[0]))

    def th(key: str, label: str) -> str:
        return f'<th{title_attr(rule_descriptions.get(key, ""))}>{esc(label)}</th>'

    if rules:
        heads = th("action", "action") + th("names", "names (system calls)") + th("args", "args (all must match)")
        table = section("syscalls", truncated(rules, rule_row, wrap=records_wrap(heads)), count=str(len(rules)),
            brief=f"{sum(len(r.get('names') or []) for r in rules)} system calls named",
            explanation=glossary.explain(join_path(path, "syscalls")), open_=False,
            hover=descriptions.get("syscalls", ""))
    return fields_table(rows) + table


def _seccomp_brief(value: Any) -> str:
    data = plain(value)
    return f"default {data.get('defaultAction')} · {len(data.get('syscalls') or [])} rules"


def _seccomp_text(value: Any) -> list[str]:
    data = plain(value)
    rules = data.get("syscalls") or []
    lines = [f"defaultAction: {data.get('defaultAction')}"]
    if data.get("architectures"):
        lines.append(f"architectures: {inline_list(data['architectures'], 6)}")
    lines.append(f"syscalls ({len(rules)} rules):")
    for rule in rules[:8]:
        names = rule.get("names") or []
        more = f" ... {len(names) - 8} more" if len(names) > 8 else ""
        lines.append(f"  {rule.get('action')}: {' '.join(names[:8])}{more}"
                     + (" (with argument conditions)" if rule.get("args") else ""))
    if len(rules) > 8:
        lines.append(f"  ... {len(rules) - 8} more rules")
    return lines


register_path("linux.seccomp", html=seccomp_html, text=_seccomp_text, brief=_seccomp_brief, section=True)
