"""Small immutable records shared by the runtime's modules (a leaf: it imports nothing).

Subclasses list their fields in ``__slots__`` and annotate them in the class body, so type
checkers see the fields a ``FrozenRecord`` sets dynamically."""

from __future__ import annotations


class FrozenRecord:
    """A small immutable value: the fields named in ``__slots__`` (in order; defaults in
    ``_defaults``), set once, compared and hashed by value -- what a frozen dataclass gives,
    without importing ``dataclasses`` (with ``inspect``, ~15 ms on every ``pyoci create``)."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, *values, **named):
        fields = self.__slots__
        kind = type(self).__name__
        if len(values) > len(fields):
            raise TypeError(f"{kind}() takes at most {len(fields)} arguments ({len(values)} given)")
        given = dict(zip(fields, values, strict=False))
        for name, value in named.items():
            if name not in fields or name in given:
                raise TypeError(f"{kind}() got an unexpected or repeated argument {name!r}")
            given[name] = value
        for name in fields:
            if name in given:
                value = given[name]
            elif name in self._defaults:
                value = self._defaults[name]
            else:
                raise TypeError(f"{kind}() missing argument {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign {name!r}")

    def _fields(self) -> tuple[str, ...]:
        return tuple(self.__slots__)

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields())

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):  # copy, deepcopy and pickle rebuild it through __init__
        return type(self), self._key()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__name__}({fields})"
