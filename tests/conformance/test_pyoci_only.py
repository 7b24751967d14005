"""pyoci's own promises beyond runc's command line: the Python API drives the same containers
as the CLI (same state root, same state JSON), and errors name the JSON path of the field at
fault.  Skipped against other runtimes."""

from __future__ import annotations

import json

import pytest

from oci_harness import assert_nothing_left

pytestmark = pytest.mark.pyoci_only


def test_python_run_captures_output_input_and_status(box):
    import pyoci_nb

    box.save()
    result = pyoci_nb.run(box.bundle, ["sh", "-c", "read x; echo out:$x; echo err >&2; exit 3"],
                          id=box.id, root=str(box.runtime.root), capture_output=True, input="hi\n")
    assert result.returncode == 3
    assert result.stdout == b"out:hi\n"
    assert result.stderr == b"err\n"
    assert_nothing_left(box)


def test_python_container_and_cli_share_state(box):
    from pyoci_nb.runtime.container import Container

    box.args("sleep", "1000")
    box.save()
    container = Container.create(box.bundle, id=box.id, root=str(box.runtime.root))
    try:
        assert box.state() == container.state()
        assert container.state()["status"] == "created"
        container.start()
        assert box.state()["status"] == "running"
        box.kill("KILL")  # the CLI signals the container the API made
        assert container.wait(timeout=10) == 137
        assert container.state()["status"] == "stopped"
    finally:
        container.delete(force=True)
    assert_nothing_left(box)


def test_config_error_names_the_json_path(box, tmp_path):
    caps = ["CAP_KILL", 42]  # (an unknown name is only a warning: config.md 1.3)
    box.set_caps(caps)
    log = tmp_path / "log.json"
    proc = box.create(check=False, global_flags=("--log", str(log), "--log-format", "json"))
    assert proc.returncode != 0
    errors = [json.loads(l)["msg"] for l in log.read_text().splitlines() if '"error"' in l]
    assert "process.capabilities." in errors[-1] and "[1]" in errors[-1], errors[-1]
    assert "capability 42 is not a name" in errors[-1]
    assert_nothing_left(box)
