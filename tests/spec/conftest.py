"""Fixtures of the spec tests: the official JSON schemas as a jsonschema validator.

Hypothesis keeps its caches in a temporary directory removed at exit, not in .hypothesis/
of the working tree.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile

import pytest

try:
    from hypothesis.configuration import set_hypothesis_home_dir
except ImportError:  # hypothesis missing: the property tests fail on import and say so
    pass
else:
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="pyoci-hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
    atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def schema_validator(runtime_spec_dir):
    """A jsonschema (draft-04) validator for config-schema.json, with every defs*.json and
    config-*.json of the runtime-spec directory in a ``referencing`` registry."""
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    @functools.lru_cache(maxsize=None)
    def validator_for(entry: str):
        resources = []
        for path in sorted(runtime_spec_dir.glob("*.json")):
            if path.name.startswith("runc-"):
                continue
            contents = json.loads(path.read_text())
            resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT4)))
        registry = Registry().with_resources(resources)
        schema = json.loads((runtime_spec_dir / entry).read_text())
        return jsonschema.Draft4Validator(schema, registry=registry)

    return validator_for
