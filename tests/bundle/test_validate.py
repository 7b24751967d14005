"""Bundle.validate(): each broken rule is reported once, with its path; a good bundle has none."""

from __future__ import annotations

import json
import os

import pytest

from pyoci_nb.bundle import Bundle
from pyoci_nb.spec.problems import Problem


def edit_config(bundle_dir, change):
    path = bundle_dir / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def paths(problems):
    return [p.path for p in problems]


def test_busybox_bundle_is_valid(busybox_bundle):
    bundle = Bundle(busybox_bundle)
    assert bundle.validate() == []
    assert bundle.validate(for_start=True) == []


def test_problems_are_problem_objects_with_messages(busybox_bundle):
    edit_config(busybox_bundle, lambda c: c["root"].update(path="no-such-dir"))
    [problem] = Bundle(busybox_bundle).validate()
    assert isinstance(problem, Problem)
    assert problem.path == "root.path" and problem.value == "no-such-dir"
    assert "does not exist" in problem.message and str(busybox_bundle / "no-such-dir") in problem.message


def test_missing_config_json(busybox_bundle):
    (busybox_bundle / "config.json").unlink()
    [problem] = Bundle(busybox_bundle).validate()
    assert problem.path == str(busybox_bundle / "config.json")
    assert "not found" in problem.message


def test_config_json_that_is_not_json(busybox_bundle):
    (busybox_bundle / "config.json").write_text('{"ociVersion": "1.0.2",\n  "root": }')
    [problem] = Bundle(busybox_bundle).validate()
    assert problem.path == f"{busybox_bundle / 'config.json'}:2:11"
    assert "not valid JSON" in problem.message


def test_config_json_that_is_not_an_object(busybox_bundle):
    (busybox_bundle / "config.json").write_text("[1, 2]")
    [problem] = Bundle(busybox_bundle).validate()
    assert "JSON object" in problem.message


def test_root_path_that_is_a_file(busybox_bundle):
    (busybox_bundle / "afile").write_text("x")
    edit_config(busybox_bundle, lambda c: c["root"].update(path="afile"))
    assert paths(Bundle(busybox_bundle).validate()) == ["root.path"]


def test_absolute_root_path_is_accepted(busybox_bundle, busybox_rootfs):
    edit_config(busybox_bundle, lambda c: c["root"].update(path=str(busybox_rootfs)))
    bundle = Bundle(busybox_bundle)
    assert bundle.validate(for_start=True) == []
    assert bundle.rootfs_path == busybox_rootfs


@pytest.mark.parametrize("change, expected_path", [
    (lambda c: c["process"].update(cwd="relative/dir"), "process.cwd"),
    (lambda c: c["mounts"][1].update(destination="dev"), "mounts[1].destination"),
    (lambda c: c.pop("ociVersion"), "ociVersion"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOT_A_THING"),
     "process.capabilities.bounding[3]"),
], ids=["relative-cwd", "relative-mount-destination", "no-ociVersion", "unknown-capability"])
def test_config_rules_are_reported_with_their_json_path(busybox_bundle, change, expected_path):
    edit_config(busybox_bundle, change)
    assert expected_path in paths(Bundle(busybox_bundle).validate())


def test_empty_args_for_start(busybox_bundle):
    edit_config(busybox_bundle, lambda c: c["process"].update(args=[]))
    assert "process.args" in paths(Bundle(busybox_bundle).validate(for_start=True))


def test_program_missing_from_the_rootfs_only_matters_for_start(busybox_bundle):
    edit_config(busybox_bundle, lambda c: c["process"].update(args=["python3", "-V"]))
    bundle = Bundle(busybox_bundle)
    assert bundle.validate() == []
    [problem] = bundle.validate(for_start=True)
    assert problem.path == "process.args[0]" and "not in the root filesystem" in problem.message
    assert "/usr/bin" in problem.message            # it says where it looked ($PATH of process.env)


def test_program_found_through_the_containers_path_and_links(busybox_bundle):
    # /bin/ls is a link to busybox: resolved inside the rootfs, not on the host
    edit_config(busybox_bundle, lambda c: c["process"].update(args=["ls", "-l"], env=["PATH=/bin"]))
    assert Bundle(busybox_bundle).validate(for_start=True) == []
    edit_config(busybox_bundle, lambda c: c["process"].update(env=["PATH=/nowhere"]))
    assert paths(Bundle(busybox_bundle).validate(for_start=True)) == ["process.args[0]"]


def test_program_that_is_not_executable(busybox_bundle):
    (busybox_bundle / "rootfs/bin/script").write_text("#!/bin/sh\n")
    os.chmod(busybox_bundle / "rootfs/bin/script", 0o644)
    edit_config(busybox_bundle, lambda c: c["process"].update(args=["/bin/script"]))
    [problem] = Bundle(busybox_bundle).validate(for_start=True)
    assert problem.path == "process.args[0]" and "not executable" in problem.message


def test_cwd_that_is_a_file_in_the_rootfs(busybox_bundle):
    edit_config(busybox_bundle, lambda c: c["process"].update(cwd="/etc/passwd"))
    assert paths(Bundle(busybox_bundle).validate()) == ["process.cwd"]


def test_bind_mount_source_missing(busybox_bundle):
    def add_bind(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": "missing-dir",
                                 "options": ["rbind", "ro"]})
    edit_config(busybox_bundle, add_bind)
    problems = Bundle(busybox_bundle).validate()
    index = len(json.loads((busybox_bundle / "config.json").read_text())["mounts"]) - 1
    assert paths(problems) == [f"mounts[{index}].source"]
    assert str(busybox_bundle / "missing-dir") in problems[0].message


def test_several_problems_are_all_reported(busybox_bundle):
    def break_things(config):
        config["process"]["cwd"] = "rel"
        config["root"]["path"] = "gone"
    edit_config(busybox_bundle, break_things)
    assert {"process.cwd", "root.path"} <= set(paths(Bundle(busybox_bundle).validate()))
