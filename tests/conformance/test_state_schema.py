"""An engine's view of the lifecycle (runtime.md#state, #lifecycle): create -> start -> kill ->
delete, with the state JSON validated against the official state-schema.json at every step --
``creating`` as a createRuntime hook sees it on stdin, then ``created``, ``running``, ``stopped``
as ``state`` prints it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HOST_BUSYBOX = "/usr/bin/busybox"


@pytest.fixture(scope="module")
def state_validator(runtime_spec_dir):
    """A validator for state-schema.json that resolves its relative $refs (defs.json) in the
    runtime-spec directory."""
    def retrieve(uri: str) -> Resource:
        path = Path(uri.removeprefix("file://"))
        return Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)

    uri = (runtime_spec_dir / "state-schema.json").as_uri()
    return jsonschema.Draft4Validator({"$ref": uri}, registry=Registry(retrieve=retrieve))


def check_state(validator, state: dict, status: str, box) -> None:
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(state)]
    assert problems == [], f"state does not match state-schema.json: {problems}\n{state}"
    assert state["status"] == status
    assert state["id"] == box.id
    assert os.path.isabs(state["bundle"])
    assert os.path.realpath(state["bundle"]) == os.path.realpath(box.bundle)


def test_lifecycle_states_match_the_schema(box, tmp_path, state_validator):
    seen_by_hook = tmp_path / "creating.json"
    box.add_hook("createRuntime", {"path": HOST_BUSYBOX,
                                   "args": ["sh", "-c", f"{HOST_BUSYBOX} cat > {seen_by_hook}"]})
    box.config["annotations"] = {"org.example.test": "conformance"}
    box.args("sleep", "1000")

    box.create()
    creating = json.loads(seen_by_hook.read_text())
    check_state(state_validator, creating, "creating", box)

    created = box.state()
    check_state(state_validator, created, "created", box)
    assert created["pid"] > 0 and Path(f"/proc/{created['pid']}").exists()
    assert creating["pid"] == created["pid"]
    assert created.get("annotations") == {"org.example.test": "conformance"}

    box.start()
    running = box.runtime.wait_status(box.id, "running")
    check_state(state_validator, running, "running", box)
    assert running["pid"] == created["pid"]

    box.kill("KILL")
    stopped = box.runtime.wait_status(box.id, "stopped")
    check_state(state_validator, stopped, "stopped", box)

    box.delete()
    gone = box.runtime("state", box.id)
    assert gone.returncode != 0 and "does not exist" in gone.stderr
