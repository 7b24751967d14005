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


def loads(data: str | bytes | bytearray):
    """``json.loads(data)``: the same value, or the same ``json.JSONDecodeError``."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    else:
        text = data
    if text is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration:
            value, end = None, -1
        except ValueError:  # the accelerator's JSONDecodeError: json words it
            end = -1
        if end >= 0 and not text[end:].strip(_WHITESPACE):
            return value
    import json

    return json.loads(data)


def _refuse(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _encoder(separators: tuple[str, str], default):
    item_separator, key_separator = separators
    return _json.make_encoder({}, default or _refuse, _json.encode_basestring_ascii, None,
                              key_separator, item_separator, False, False, True)


_COMPACT = _encoder((", ", ": "), None)


class _NotPlain(Exception):
    """A dict key that is not a string: json.dumps's own rules convert it."""


def dumps(value, *, indent: int | None = None, separators: tuple[str, str] | None = None,
          default=None) -> str:
    """``json.dumps(value, indent=..., separators=..., default=...)`` (ASCII output, keys in
    insertion order): the same text."""
    if indent is not None:
        try:
            return _indented(value, " " * indent, "\n", default)
        except _NotPlain:
            import json

            return json.dumps(value, indent=indent, separators=separators, default=default)
    if separators is None and default is None:
        encode = _COMPACT
    else:
        encode = _encoder(separators or (", ", ": "), default)
    return "".join(encode(value, 0))


def _indented(value, step: str, newline: str, default) -> str:
    """``json.dumps`` with ``indent``: containers one item per line, scalars as compact JSON."""
    if isinstance(value, dict) and value:
        inner = newline + step
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain(key)
            items.append(_json.encode_basestring_ascii(key) + ": " + _indented(item, step, inner, default))
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(value, (list, tuple)) and value:
        inner = newline + step
        return "[" + inner + ("," + inner).join(_indented(item, step, inner, default)
                                                for item in value) + newline + "]"
    return dumps(value, default=default)
