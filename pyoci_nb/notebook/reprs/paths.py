"""Where a value sits in config.json, and the renderers registered for a JSON path.

Pictures beat words for a few paths (the capability grid, the namespaces, seccomp ...): their
modules call ``register_path``; ``special_for(table, path)`` finds them.  ``path_of(obj)`` is
where a part of a Spec sits (``Process`` -> ``process``), found from the models' annotations.
"""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Callable
from typing import Any

from pyoci_nb.notebook import glossary
from pyoci_nb.notebook.reprs.values import field_key, join_path

#: JSON path -> ``html(value, path, depth) -> str``: the picture drawn for the value at that path.
PATH_HTML: dict[str, Callable[[Any, str, int], str]] = {}
#: JSON path -> ``text(value) -> list[str]``: the lines shown for it in a text repr.
PATH_TEXT: dict[str, Callable[[Any], list[str]]] = {}
#: JSON path -> ``brief(value) -> str``: a few words on its collapsed section's line.
PATH_BRIEF: dict[str, Callable[[Any], str]] = {}
#: Paths whose picture gets a section of its own even when the value is small.
SECTION_PATHS: set[str] = set()


def register_path(path: str, *, html: Callable[[Any, str, int], str] | None = None,
                  text: Callable[[Any], list[str]] | None = None, brief: Callable[[Any], str] | None = None,
                  section: bool = False) -> None:
    """Use these renderers for the value at JSON ``path`` (list items: ``mounts[]`` style paths
    are normalised by ``glossary.normalize_path``)."""
    if html is not None:
        PATH_HTML[path] = html
    if text is not None:
        PATH_TEXT[path] = text
    if brief is not None:
        PATH_BRIEF[path] = brief
    if section:
        SECTION_PATHS.add(path)


def special_for(table: dict, path: str):
    """The path-specific renderer for ``path``; items of lists (``mounts[3]``) have none, so a
    single Mount is not drawn as the mounts table."""
    if path.endswith("]"):
        return None
    return table.get(glossary.normalize_path(path))


def path_of(obj: Any) -> str:
    """The JSON path where a part of a Spec sits (``Process`` -> ``process``), "" if unknown."""
    try:
        return class_paths().get(type(obj), "")
    except Exception:
        return ""


@functools.cache
def class_paths() -> dict[type, str]:
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
            for child, container in model_classes_in(info.annotation):
                if child not in paths:
                    # an item of a list is "mounts[]", a value of a map "linux.timeOffsets[]"
                    paths[child] = join_path(prefix, field_key(name, info)) + ("[]" if container else "")
                    queue.append((child, paths[child]))
    return paths


def model_classes_in(annotation: Any, container: bool = False) -> list[tuple[type, bool]]:
    """The model classes inside an annotation, each with whether it sits in a list or dict."""
    found = []
    if isinstance(annotation, type) and isinstance(getattr(annotation, "model_fields", None), dict):
        found.append((annotation, container))
    inside = container or typing.get_origin(annotation) in (list, dict, tuple, set)
    for arg in typing.get_args(annotation):
        found.extend(model_classes_in(arg, inside))
    return found
