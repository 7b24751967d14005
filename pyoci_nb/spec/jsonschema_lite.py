"""A small JSON-Schema (draft-04 subset) checker for the runtime-spec schemas (standard library only).

The runtime's pre-flight check cannot import the ``jsonschema`` package (the CLI path is standard
library only), so this walks the official runtime-spec 1.3 schemas shipped in ``spec/schema/``
(copied unchanged from the runtime-spec repository's ``schema/`` directory, Apache-2.0, LICENSE there)
and reports every violation as a ``Problem`` with the JSON path of the offending value.  It
supports what those schemas use: ``$ref`` (across files), ``type``, ``properties``,
``required``, ``items``, ``enum``, ``pattern``, ``minimum``/``maximum``, ``minItems``,
``allOf``, ``anyOf``, ``additionalProperties`` and ``patternProperties``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from pyoci_nb.spec.problems import Problem, join_path, short_repr

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def json_type_name(value: Any) -> str:
    """The JSON name of a Python value's type (``"string"``, ``"integer"``, ``"object"`` ...)."""
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](value):
            return name
    return type(value).__name__


@cache
def _load(file_name: str) -> dict:
    with open(SCHEMA_DIR / file_name, encoding="utf-8") as f:
        return json.load(f)


@cache
def _pattern(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _resolve(ref: str, current_file: str) -> tuple[dict, str]:
    file_part, _, pointer = ref.partition("#")
    file_name = file_part or current_file
    node: Any = _load(file_name)
    for token in filter(None, pointer.split("/")):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node, file_name


def check(instance: Any, schema_file: str = "config-schema.json", path: str = "") -> list[Problem]:
    """Every violation of ``schema_file`` (a file in ``spec/schema/``) by ``instance``."""
    problems: list[Problem] = []
    _check(instance, _load(schema_file), schema_file, path, problems)
    return problems


def _check(value: Any, schema: dict, file_name: str, path: str, problems: list[Problem]) -> None:
    if "$ref" in schema:  # draft-04: $ref replaces its siblings
        target, target_file = _resolve(schema["$ref"], file_name)
        _check(value, target, target_file, path, problems)
        return
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES[name](value) for name in names):
            problems.append(Problem(path, f"must be {' or '.join(_article(n) for n in names)}, "
                                          f"not {_article(json_type_name(value))} ({short_repr(value)})", value))
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(Problem(path, f"{short_repr(value)} is not one of the allowed values "
                                      f"({', '.join(map(str, schema['enum']))})", value))
    if isinstance(value, str) and "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        problems.append(Problem(path, f"{short_repr(value)} does not match the pattern {schema['pattern']}", value))
    if _JSON_TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(Problem(path, f"{value} is below the minimum {schema['minimum']}", value))
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(Problem(path, f"{value} is above the maximum {schema['maximum']}", value))
    for sub in schema.get("allOf", ()):
        _check(value, sub, file_name, path, problems)
    if "anyOf" in schema:
        attempts = []
        for sub in schema["anyOf"]:
            found: list[Problem] = []
            _check(value, sub, file_name, path, found)
            if not found:
                break
            attempts.append(found)
        else:
            if len(attempts) == 1:
                problems.extend(attempts[0])
            else:
                problems.append(Problem(path, "matches none of the allowed forms: "
                                        + "; ".join(str(a[0]) for a in attempts), value))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(Problem(path, f"must have at least {schema['minItems']} "
                                          f"item{'s' if schema['minItems'] != 1 else ''}", value))
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _check(item, items, file_name, join_path(path, index), problems)
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(Problem(join_path(path, key), "is required", None))
        properties = schema.get("properties", {})
        pattern_properties = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            item_path = join_path(path, key)
            matched = False
            if key in properties:
                matched = True
                _check(item, properties[key], file_name, item_path, problems)
            for pattern, sub in pattern_properties.items():
                if _pattern(pattern).search(key):
                    matched = True
                    _check(item, sub, file_name, item_path, problems)
            if not matched:
                if additional is False:
                    problems.append(Problem(item_path, "is not an allowed property here", item))
                elif isinstance(additional, dict):
                    _check(item, additional, file_name, item_path, problems)


def _article(type_name: str) -> str:
    return ("an " if type_name[0] in "aeiou" else "a ") + type_name
