"""``python -m pyoci_nb.image``: pull, list, inspect, unpack, rm, prune as a user runs them."""

import json
import subprocess
import sys

import pytest
from registry_harness import tar_bytes

pytestmark = pytest.mark.root


def cli(store, *args):
    return subprocess.run([sys.executable, "-m", "pyoci_nb.image", "--store", str(store), *args],
                          capture_output=True, text=True, timeout=120)


def test_pull_list_inspect_unpack_rm_prune(registry, layout, busybox_layer, tmp_path):
    store = tmp_path / "store"
    layout.tag("v1", layout.image([busybox_layer, tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"m\n")])],
                                  config={"Cmd": ["sh"]}, history=["base", "ADD motd"]))
    registry.push(layout.path, "v1", "demo/cli:v1")
    ref = f"{registry.host}/demo/cli:v1"
    pulled = cli(store, "pull", "-q", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert "ADD motd" in pulled.stdout and "linux/amd64" in pulled.stdout
    listed = cli(store, "list")
    assert listed.stdout.startswith(f"{ref}\tsha256:")
    inspected = json.loads(cli(store, "inspect", "--json", ref).stdout)
    assert inspected["config"]["config"]["Cmd"] == ["sh"]
    unpacked = cli(store, "unpack", "--flat", ref, str(tmp_path / "bundle"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "motd").read_text() == "m\n"
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["args"] == ["sh"]
    assert cli(store, "rm", ref).returncode == 0
    pruned = cli(store, "prune")
    assert len(pruned.stdout.split()) == 4
    assert cli(store, "list").stdout == ""


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    bad = cli(tmp_path / "store", "pull", "Not/Valid")
    assert bad.returncode == 1
    assert bad.stderr.startswith("pyoci-image: reference: invalid repository name 'Not/Valid'")
    assert "Traceback" not in bad.stderr
    missing = cli(tmp_path / "store", "inspect", "127.0.0.1:1/none:1")
    assert missing.returncode == 1 and "image not in the local store" in missing.stderr
    unusable = cli(tmp_path / "file" / "store", "pull", "127.0.0.1:1/x:1")
    assert unusable.returncode == 1 and "Traceback" not in unusable.stderr
    assert f"pyoci-image: {tmp_path / 'file' / 'store'}: cannot use the image store" in unusable.stderr
