"""JSON for the lifecycle commands, without importing the ``json`` package.

``json`` imports ``re`` (and with it ``enum``) and compiles four regular expressions when it is
imported: on a small VM that is ~10 ms, a third of a whole ``pyoci state``.  The work of
``json.loads``/``json.dumps`` is done by its C accelerator ``_json`` anyway; this module calls
the accelerator directly and gives the same results (tests/runtime/test_jsonio.py compares
them).  ``json`` itself is imported only for what the accelerator leaves to it: the message of
a decoding error (``json.JSONDecodeError`` with line and column) and input it does not take
(bytes in UTF-16/32, a byte order mark).
"""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"


class _Decoder:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder`` (its defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan = _json.make_scanner(_Decoder)


class NestingError(ValueError):
    """A document nested too deeply to be read (``json.loads`` raises ``RecursionError``)."""


def loads(data: str | bytes | bytearray):
    """``json.loads(data)``: the same value, or the same ``json.JSONDecodeError``; a document
    nested too deeply for Python's recursion limit raises ``NestingError`` (a ValueError)
    instead of json's ``RecursionError``."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    elif isinstance(data, str):
        text = data
    else:
        text = None  # json words the TypeError
    if text is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration:
            value, end = None, -1
        except (ValueError, SystemError):
            # the accelerator's JSONDecodeError: json words it.  SystemError: Python 3.11's
            # accelerator cannot make a JSONDecodeError before json.decoder is imported
            end = -1
        except RecursionError:
            raise NestingError("arrays and objects are nested too deeply to be read "
                               f"(more than about {_recursion_limit()} levels)") from None
        if end >= 0 and not text[end:].strip(_WHITESPACE):
            return value
    import json

    try:
        return json.loads(data)
    except RecursionError:
        raise NestingError("arrays and objects are nested too deeply to be read "
                           f"(more than about {_recursion_limit()} levels)") from None


def _recursion_limit() -> int:
    import sys

    return sys.getrecursionlimit()


def deeper_than(value, limit: int) -> str | None:
    """The JSON path (``a.b[2]...``) of the first array or object of ``value`` nested more
    than ``limit`` levels deep, or None.  Iterative: any depth is walked without recursion."""
    stack = [(value, 1, None)]  # (node, its depth, (parent entry, key) for the path)
    while stack:
        node, depth, link = stack.pop()
        if depth > limit:
            keys: list = []
            while link is not None:
                link, key = link
                keys.append(key)
            return _json_path(reversed(keys))
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (link, key)))
    return None


def _json_path(keys) -> str:
    """``a.b[2]["c d"]``; a long path keeps its first and last steps around "...". """
    keys = list(keys)
    if len(keys) > 12:
        return _json_path(keys[:6]) + "..." + _json_path(keys[-4:]).lstrip(".")
    path = ""
    for key in keys:
        if isinstance(key, int):
            path += f"[{key}]"
        elif key.isidentifier():
            path += f".{key}" if path else key
        else:
            path += f"[{dumps(key)}]"
    return path


def _refuse(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _encoder(separators: tuple[str, str], default):
    """A ``_json`` encoder, made for each call as json does: its ``markers`` (the containers
    being encoded, for the circular-reference check) are not emptied when encoding fails."""
    item_separator, key_separator = separators
    return _json.make_encoder({}, default or _refuse, _json.encode_basestring_ascii, None,
                              key_separator, item_separator, False, False, True)


class _NotPlain(Exception):
    """A dict key that is not a string: json.dumps's own rules convert it."""


def dumps(value, *, indent: int | str | None = None, separators: tuple[str, str] | None = None,
          default=None) -> str:
    """``json.dumps(value, indent=..., separators=..., default=...)`` (ASCII output, keys in
    insertion order): the same text."""
    if indent is not None:
        step = indent if isinstance(indent, str) else " " * indent
        try:
            return _indented(value, step, "\n", separators or (",", ": "), default, set())
        except _NotPlain:
            import json

            return json.dumps(value, indent=indent, separators=separators, default=default)
    encode = _encoder(separators or (", ", ": "), default)
    return "".join(encode(value, 0))


def _indented(value, step: str, newline: str, separators: tuple[str, str], default,
              markers: set[int]) -> str:
    """``json.dumps`` with ``indent``: containers one item per line, scalars as compact JSON;
    what ``default`` makes of another object is indented in turn.  ``markers``: the ids of the
    containers being encoded (json's check for circular references)."""
    if isinstance(value, (str, int, float)) or value is None:
        return dumps(value)
    if isinstance(value, (dict, list, tuple)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    marker = id(value)
    if marker in markers:
        raise ValueError("Circular reference detected")
    markers.add(marker)
    item_separator, key_separator = separators
    inner = newline + step
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain(key)
            items.append(_json.encode_basestring_ascii(key) + key_separator
                         + _indented(item, step, inner, separators, default, markers))
        text = "{" + inner + (item_separator + inner).join(items) + newline + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + inner + (item_separator + inner).join(
            _indented(item, step, inner, separators, default, markers) for item in value) + newline + "]"
    else:
        text = _indented((default or _refuse)(value), step, newline, separators, default, markers)
    markers.discard(marker)
    return text
