"""``pyoci_nb.runtime.jsonio`` against the ``json`` module: the same values, the same text, the
same errors (type and message), and neither ``json`` nor ``re`` imported on the way."""

from __future__ import annotations

import datetime
import gc
import json
import math
import weakref
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyoci_nb.runtime import jsonio
from runtime_helpers import modules_loaded_by

REPO = Path(__file__).resolve().parents[2]
#: ../shared/runtime-spec beside the clone (where tests/conftest.py's shared_dir looks), known at
#: collection time for the parametrization
SPEC = next((d / "runtime-spec" for d in (REPO.parent / "shared", REPO / "shared", Path("/work/shared"))
             if (d / "runtime-spec").is_dir()), REPO.parent / "shared" / "runtime-spec")
SPEC_FILES = sorted(SPEC.rglob("*.json")) if SPEC.is_dir() else []


def outcome(function, *args, **kwargs):
    """What a call gives: ("value", repr) or ("error", type, message, position)."""
    try:
        value = function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        position = tuple(getattr(exc, name, None) for name in ("pos", "lineno", "colno"))
        return ("error", type(exc), str(exc), position)
    return ("value", repr(value))


def same_as_json_loads(data):
    expected = outcome(json.loads, data)
    assert outcome(jsonio.loads, data) == expected, data
    return expected


DUMPS_VARIANTS = [
    {},
    {"indent": 2},
    {"indent": 4},
    {"separators": (",", ":")},
]


def same_as_json_dumps(value, **kwargs):
    expected = outcome(json.dumps, value, **kwargs)
    assert outcome(jsonio.dumps, value, **kwargs) == expected, (value, kwargs)
    return expected


# --- (a) the runtime-spec's JSON files ----------------------------------------------------------


def test_the_runtime_spec_files_are_there():
    assert len(SPEC_FILES) >= 20, f"no runtime-spec JSON under {SPEC}"
    invalid = [p for p in SPEC_FILES if outcome(json.loads, p.read_text())[0] == "error"]
    assert invalid, "expected the spec's test/…/bad/invalid-json.json files"


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(SPEC)))
def test_runtime_spec_file(path):
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    result = same_as_json_loads(text)
    assert same_as_json_loads(raw) == result
    assert same_as_json_loads(bytearray(raw)) == result
    if result[0] == "error":
        assert result[1] is json.JSONDecodeError
        return
    value = json.loads(text)
    for kwargs in DUMPS_VARIANTS:
        same_as_json_dumps(value, **kwargs)
    # and back: what jsonio writes, both modules read as the same value
    assert repr(jsonio.loads(jsonio.dumps(value, indent=2))) == repr(value)


# --- (b) generated JSON values ----------------------------------------------------------------

_texts = st.one_of(
    st.text(st.characters(exclude_categories=())),  # any code point, surrogates included
    st.text(st.sampled_from("\x00\x01\x1f\x7f\x80\"\\/\b\f\n\r\t \u00e9\u2028\u2029\ufeff\uffff"
                            "\ud800\udfff\U0001f600a")),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2 ** 256), max_value=2 ** 256),
    st.sampled_from([0, -1, 2 ** 63, -(2 ** 63) - 1, 2 ** 64, 10 ** 100]),
    st.floats(allow_nan=False, allow_infinity=False),
    _texts,
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(_texts, children, max_size=6)),
    max_leaves=40,
)
_settings = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(json_values)
def test_dumps_generated(value):
    for kwargs in DUMPS_VARIANTS:
        same_as_json_dumps(value, **kwargs)


@_settings
@given(json_values)
def test_loads_generated(value):
    for text in (json.dumps(value), json.dumps(value, indent=2), json.dumps(value, ensure_ascii=False),
                 json.dumps(value, separators=(",", ":"))):
        result = same_as_json_loads(text)
        assert result[0] == "value"
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate written as is (ensure_ascii=False)
            continue
        assert same_as_json_loads(encoded) == result


@_settings
@given(json_values)
def test_round_trip(value):
    # == json's round trip, not value itself: a surrogate pair comes back as one character
    expected = repr(json.loads(json.dumps(value)))
    assert repr(jsonio.loads(jsonio.dumps(value))) == expected
    assert repr(jsonio.loads(jsonio.dumps(value, indent=2).encode())) == expected


_json_alphabet = st.sampled_from(list('{}[]",:0123456789.eE+- \t\n\r\x0c\\uabfnrtlsNIiyx\u00e9\ufeff'))


@_settings
@given(st.text(_json_alphabet, max_size=30))
def test_loads_arbitrary_text(text):
    """Mostly invalid documents: the same value or the same error, position included."""
    same_as_json_loads(text)


@_settings
@given(json_values, st.data())
def test_loads_damaged_documents(value, data):
    text = json.dumps(value)
    cut = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.text(_json_alphabet, max_size=3))
    same_as_json_loads(text[:cut] + insert + text[cut + 1:])
    same_as_json_loads(text[:cut])


# --- (c) edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    '{"\u00e9t\u00e9": "caf\u00e9 \u2603 \U0001f600"}'.encode("utf-8"),
    b'{"a": [1, 2.5, true, null]}',
    bytearray(b'[1, "x"]'),
    b"",
    b"   ",
    b'"\xed\xa0\x80"',  # an encoded surrogate: json decodes with surrogatepass
    b'"\xff"',  # not UTF-8 at all
])
def test_bytes_input(data):
    same_as_json_loads(data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_bytes_fall_back_to_json(encoding):
    document = '{"a": [1, "\u00e9\u2603"], "b": {"c": null}}'
    data = document.encode(encoding)
    assert jsonio.loads(data) == {"a": [1, "\u00e9\u2603"], "b": {"c": None}}
    same_as_json_loads(data)
    same_as_json_loads("7".encode(encoding))


def test_byte_order_mark():
    with_bom = '\ufeff{"a": 1}'
    result = same_as_json_loads(with_bom)  # json refuses a BOM in text
    assert result[0] == "error" and "BOM" in result[2]
    assert jsonio.loads(with_bom.encode("utf-8")) == {"a": 1}  # and accepts it in bytes
    same_as_json_loads(with_bom.encode("utf-8"))
    same_as_json_loads(b"\xef\xbb\xbf")


@pytest.mark.parametrize("text", [
    ' \t\n\r{"a": 1} \t\n\r', "\n\n  [1,\n 2]\n", "  7", "7  ", "\r\n\"x\"\r\n",
    "\x0c1", "1\x0b", "\u00a01", "1\u00a0", "\u20281",  # not JSON whitespace
])
def test_leading_and_trailing_whitespace(text):
    same_as_json_loads(text)


@pytest.mark.parametrize("text", ['{"a": 1} x', "[1]]", "1 2", '{"a": 1}{}', "null,", "true false",
                                  '"a" "b"', "01", "1.", "-", "[1,]", '{"a":1,}', "nul"])
def test_trailing_garbage_and_bad_documents(text):
    result = same_as_json_loads(text)
    assert result[0] == "error" and result[1] is json.JSONDecodeError


@pytest.mark.parametrize("text", ["", " ", "\n\t "])
def test_empty_input(text):
    result = same_as_json_loads(text)
    assert result[:3] == ("error", json.JSONDecodeError, f"Expecting value: line {1 + text.count(chr(10))} "
                          f"column {len(text) - text.rfind(chr(10))} (char {len(text)})")


def test_nan_and_infinity():
    assert math.isnan(jsonio.loads("NaN"))
    assert jsonio.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    same_as_json_loads('{"a": NaN, "b": [Infinity, -Infinity]}')
    same_as_json_loads("-NaN")
    same_as_json_loads("infinity")
    for value in (math.nan, math.inf, -math.inf, [math.nan, {"x": -math.inf}]):
        for kwargs in DUMPS_VARIANTS:
            same_as_json_dumps(value, **kwargs)
    assert jsonio.dumps({"x": math.inf}, indent=2) == '{\n  "x": Infinity\n}'


def test_big_numbers():
    same_as_json_loads("1" * 4300)
    same_as_json_loads("1" * 4301)  # past int's string-conversion limit: the same ValueError
    same_as_json_loads("1e400")
    same_as_json_loads("-0.0")
    same_as_json_dumps(10 ** 4299)
    same_as_json_dumps(10 ** 4300)
    same_as_json_dumps([10 ** 4300], indent=2)


def test_not_text_is_a_type_error():
    for data in (5, None, ["[]"], memoryview(b"[]")):
        result = same_as_json_loads(data)
        assert result[0] == "error" and result[1] is TypeError


_NON_STRING_KEYS = {7: "int", 2.5: "float", True: "true", False: "false", None: "null", "s": [{3: {4.0: []}}]}


@pytest.mark.parametrize("kwargs", DUMPS_VARIANTS + [{"indent": 0}, {"indent": "\t"},
                                                     {"indent": 2, "separators": (",", ":")}])
def test_non_string_keys(kwargs):
    same_as_json_dumps(_NON_STRING_KEYS, **kwargs)
    same_as_json_dumps({"outer": {"inner": {7: "deep"}}}, **kwargs)
    result = same_as_json_dumps({(1, 2): "tuple key"}, **kwargs)
    assert result[0] == "error" and result[1] is TypeError


@pytest.mark.parametrize("kwargs", DUMPS_VARIANTS + [{"indent": 0}, {"indent": -1}, {"indent": "\t"},
                                                     {"indent": 3, "separators": (" ,", " = ")},
                                                     {"indent": 2, "separators": (",", ":")}])
def test_indent_and_separators(kwargs):
    value = {"a": [1, (2, 3), [], {}, ()], "b": {"c": "d", "e": [[[]]]}, "f": ""}
    same_as_json_dumps(value, **kwargs)
    same_as_json_dumps((1, [2, (3,)]), **kwargs)
    for scalar in ("x", 1, 1.5, True, None, "\u00e9\n"):
        same_as_json_dumps(scalar, **kwargs)


class _Thing:
    def __str__(self):
        return "thing!"


@pytest.mark.parametrize("kwargs", DUMPS_VARIANTS)
def test_default(kwargs):
    value = {"when": datetime.date(2024, 1, 2), "where": Path("/x/y"), "what": [_Thing(), {1, 2} - {1, 2}],
             "ok": 1}
    result = same_as_json_dumps(value, default=str, **kwargs)
    assert result[0] == "value" and "thing!" in result[1]
    # what default returns is encoded in turn (indented, when indenting)
    expanded = same_as_json_dumps({"t": _Thing(), "l": [_Thing()]},
                                  default=lambda o: {"kind": type(o).__name__, "items": [1, [2]]}, **kwargs)
    assert expanded[0] == "value"
    same_as_json_dumps(_Thing(), default=lambda o: [str(o)], **kwargs)


@pytest.mark.parametrize("kwargs", DUMPS_VARIANTS)
@pytest.mark.parametrize("value", [object(), {"a": {1, 2}}, [b"bytes"], {"k": [1, {"deep": _Thing()}]},
                                   1 + 2j])
def test_unserializable_type_error(kwargs, value):
    result = same_as_json_dumps(value, **kwargs)
    assert result[0] == "error" and result[1] is TypeError
    assert result[2] == f"Object of type {_first_unserializable(value)} is not JSON serializable"


def _first_unserializable(value) -> str:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            name = _first_unserializable(item)
            if name:
                return name
        return ""
    return "" if isinstance(value, (str, int, float, type(None))) else type(value).__name__


@pytest.mark.parametrize("kwargs", DUMPS_VARIANTS)
def test_circular_reference(kwargs):
    loop: list = []
    loop.append(loop)
    ring: dict = {"a": {}}
    ring["a"]["b"] = ring
    result = same_as_json_dumps(loop, **kwargs)
    assert result[:3] == ("error", ValueError, "Circular reference detected")
    same_as_json_dumps(ring, **kwargs)
    same_as_json_dumps(_Thing(), default=lambda o: o, **kwargs)  # default gives the object back
    shared = [1]
    same_as_json_dumps([shared, shared, {"x": shared}], **kwargs)  # repeated is not circular


def test_a_failed_dumps_keeps_nothing_alive():
    """json makes an encoder per call; a shared one would keep what it was encoding when it
    failed (in its markers) for ever."""
    def fail(**kwargs):
        thing = _Thing()
        ref = weakref.ref(thing)
        try:
            jsonio.dumps([{"x": thing}], **kwargs)
        except TypeError:
            pass
        else:
            raise AssertionError("dumps accepted an object")
        return ref

    for kwargs in DUMPS_VARIANTS:
        ref = fail(**kwargs)
        gc.collect()
        assert ref() is None, kwargs
    assert jsonio.dumps([[1]]) == "[[1]]"


def test_a_failed_dumps_does_not_poison_the_next():
    """The same unserializable object twice: the same TypeError twice (a shared encoder
    remembered it as "being encoded" and then called it a circular reference)."""
    thing = _Thing()
    for kwargs in DUMPS_VARIANTS + DUMPS_VARIANTS:
        assert same_as_json_dumps([thing], **kwargs)[1] is TypeError
        assert same_as_json_dumps(thing, **kwargs)[1] is TypeError
    assert jsonio.dumps([str(thing)]) == '["thing!"]'


def test_dict_and_list_subclasses_and_order():
    from collections import OrderedDict

    class Strict(dict):
        pass

    value = OrderedDict([("z", 1), ("a", Strict(b=[2]))])
    for kwargs in DUMPS_VARIANTS:
        same_as_json_dumps(value, **kwargs)
    assert jsonio.dumps({"b": 1, "a": 2}) == '{"b": 1, "a": 2}'  # insertion order, not sorted


def test_ascii_output():
    text = jsonio.dumps({"k\u00e9": "\u2603\U0001f600\x00"}, indent=2)
    assert text.isascii()
    assert text == json.dumps({"k\u00e9": "\u2603\U0001f600\x00"}, indent=2)


# --- what it imports ----------------------------------------------------------------------------


def test_jsonio_imports_neither_json_nor_re():
    code = (
        "import pyoci_nb.runtime.jsonio as jsonio\n"
        "assert jsonio.loads('{\"a\": [1]}') == {'a': [1]}\n"
        "assert jsonio.loads(b' [true, null] ') == [True, None]\n"
        "assert jsonio.dumps({'a': 1}, indent=2) == '{\\n  \"a\": 1\\n}'\n"
        "assert jsonio.dumps({'a': [1.5, None]}) == '{\"a\": [1.5, null]}'\n"
        "assert jsonio.dumps({'a': 1}, separators=(',', ':'), default=str) == '{\"a\":1}'\n"
    )
    assert modules_loaded_by(code, ("json", "re", "enum")) == []


def test_errors_still_come_from_json():
    with pytest.raises(json.JSONDecodeError) as raised:
        jsonio.loads('{"a": }')
    assert (raised.value.lineno, raised.value.colno, raised.value.pos) == (1, 7, 6)
