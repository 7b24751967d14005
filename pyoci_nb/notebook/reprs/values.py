"""The data behind a repr, duck-typed (no pydantic import): model fields with their JSON names
and descriptions, plain JSON-like data, JSON paths, and a few words that make a number readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyoci_nb.notebook import glossary

#: "unlimited" of a config's rlimits (RLIM_INFINITY as an unsigned 64-bit number).
RLIM_INFINITY = 2**64 - 1


def is_model(obj: Any) -> bool:
    """True for pydantic models (duck typing: no pydantic import)."""
    return isinstance(getattr(type(obj), "model_fields", None), dict) and hasattr(obj, "model_dump")


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or is_enum(value)


def is_enum(value: Any) -> bool:
    return any(cls.__name__ == "Enum" for cls in type(value).__mro__)


def scalar(value: Any) -> Any:
    return value.value if is_enum(value) else value


def field_key(name: str, info: Any) -> str:
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
        items.append((field_key(name, info), value, getattr(info, "description", None) or ""))
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
    return {field_key(name, info): (getattr(info, "description", None) or "") for name, info in fields.items()}


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
    return scalar(value)


def join_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def hover_text(path: str, description: str) -> str:
    """The title text of a field: the model's description, else the plain-words explanation."""
    return description or glossary.explain(path)


def json_compact(value: Any) -> str:
    return json.dumps(plain(value), separators=(", ", ": "), ensure_ascii=False, default=str)


def human_bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


BYTE_FIELDS = {"linux.resources.memory.limit", "linux.resources.memory.reservation",
                "linux.resources.memory.swap", "linux.resources.memory.kernel",
                "linux.resources.memory.kernelTCP", "linux.resources.hugepageLimits.limit"}


MODE_FIELDS = {"linux.devices.fileMode", "process.user.umask"}


def value_note(path: str, value: Any) -> str:
    """A few words that make a number readable (bytes, file modes, unlimited rlimits)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    key = glossary.normalize_path(path)
    if key in BYTE_FIELDS:
        return "unlimited" if value == -1 else human_bytes(value)
    if key in MODE_FIELDS:
        return oct(value).replace("0o", "0")
    if key in ("process.rlimits.soft", "process.rlimits.hard") and value == RLIM_INFINITY:
        return "unlimited"
    return ""
