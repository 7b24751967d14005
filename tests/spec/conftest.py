"""Fixtures of the spec tests: the official JSON schemas as a jsonschema validator."""

from __future__ import annotations

import functools
import json

import pytest


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
