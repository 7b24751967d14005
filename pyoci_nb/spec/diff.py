"""Differences between two configs (``Spec.diff``), standard library only.

A ``SpecDiff`` lists ``Change``s: the JSON path, the kind (added / removed / changed) and the
old and new values.  Lists are aligned with ``difflib`` so removing one capability from the
head of a list reports that one entry, not every entry after it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyoci_nb.spec.problems import ReprMixin, join_path

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_MISSING = object()


@dataclass(frozen=True)
class Change:
    """One difference: at ``path`` a value was added, removed or changed (``old`` -> ``new``)."""

    path: str
    kind: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        where = self.path or "(config)"
        if self.kind == ADDED:
            return f"+ {where}: {_show(self.new)}"
        if self.kind == REMOVED:
            return f"- {where}: {_show(self.old)}"
        return f"~ {where}: {_show(self.old)} -> {_show(self.new)}"


@dataclass
class SpecDiff(ReprMixin):
    """The changes from one config (``before``) to another (``after``), in document order.

    ``str()`` gives a unified-diff-like listing (``+`` added, ``-`` removed, ``~`` changed);
    an empty diff is falsy."""

    changes: list[Change] = field(default_factory=list)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    @property
    def added(self) -> list[Change]:
        return [c for c in self.changes if c.kind == ADDED]

    @property
    def removed(self) -> list[Change]:
        return [c for c in self.changes if c.kind == REMOVED]

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.kind == CHANGED]

    def paths(self) -> list[str]:
        return [c.path for c in self.changes]

    def __str__(self) -> str:
        if not self.changes:
            return "no differences"
        summary = (f"{len(self.added)} added, {len(self.removed)} removed, "
                   f"{len(self.changed)} changed")
        return "\n".join([summary] + [str(c) for c in self.changes])


def diff_configs(before: Any, after: Any) -> SpecDiff:
    """The ``SpecDiff`` from ``before`` to ``after`` (parsed JSON values)."""
    changes: list[Change] = []
    _diff(before, after, "", changes)
    return SpecDiff(changes)


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            sub = join_path(path, key)
            if a is _MISSING:
                out.append(Change(sub, ADDED, None, b))
            elif b is _MISSING:
                out.append(Change(sub, REMOVED, a, None))
            else:
                _diff(a, b, sub, out)
    elif isinstance(old, list) and isinstance(new, list):
        _diff_lists(old, new, path, out)
    elif _same(old, new):
        return
    else:
        out.append(Change(path, CHANGED, old, new))


def _diff_lists(old: list, new: list, path: str, out: list[Change]) -> None:
    keys_old = [_key(v) for v in old]
    keys_new = [_key(v) for v in new]
    matcher = difflib.SequenceMatcher(a=keys_old, b=keys_new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace":
            common = min(i2 - i1, j2 - j1)
            for k in range(common):  # pairwise: a changed entry, recurse into it
                _diff(old[i1 + k], new[j1 + k], join_path(path, j1 + k), out)
            for k in range(i1 + common, i2):
                out.append(Change(join_path(path, k), REMOVED, old[k], None))
            for k in range(j1 + common, j2):
                out.append(Change(join_path(path, k), ADDED, None, new[k]))
        elif tag == "delete":
            for k in range(i1, i2):
                out.append(Change(join_path(path, k), REMOVED, old[k], None))
        elif tag == "insert":
            for k in range(j1, j2):
                out.append(Change(join_path(path, k), ADDED, None, new[k]))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 100 else text[:97] + "..."
