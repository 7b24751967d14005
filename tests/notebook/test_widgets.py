"""The ipywidgets editors, driven without a browser: setting a widget's value runs the same
observers a browser edit does.

SpecEditor: form -> model and model -> form, invalid input shown beside the field with the
model untouched, JSON preview equal to ``spec.to_dict()``.  BundleBrowser on a real busybox
bundle; ContainerPanel on a real container (root).
"""

from __future__ import annotations

import html
import json
import re

import pytest

from pyoci_nb.notebook.widgets import (CAPABILITY_PRESETS, BundleBrowser, ContainerPanel, SpecEditor,
                                       parse_size)
from pyoci_nb.spec import Spec, default_spec, load_spec
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES


@pytest.fixture
def editor():
    widget = SpecEditor()
    yield widget
    widget.close()


def preview_json(editor: SpecEditor) -> dict:
    text = re.search(r"<pre[^>]*>(.*)</pre>", editor.json_preview.value, re.S).group(1)
    return json.loads(html.unescape(text))


def message(editor: SpecEditor, path: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", editor.bindings[path].message.value))


# ----------------------------------------------------------------------------- form -> model
def test_a_new_editor_holds_the_default_spec(editor):
    assert isinstance(editor.spec, Spec)
    assert editor.spec.to_dict() == default_spec().to_dict()
    assert preview_json(editor) == default_spec().to_dict()
    assert "no differences" in editor.diff_view.value
    assert editor.problems == []


def test_editing_fields_updates_the_model_preview_and_diff(editor):
    seen = []
    editor.observe(lambda change: seen.append(change["new"]), names="spec")
    editor.fields["process.args"].value = "sh -c 'echo hello world'"
    editor.fields["process.env"].value = "PATH=/bin\nGREETING=hi there"
    editor.fields["process.cwd"].value = "/tmp"
    editor.fields["process.user.uid"].value = "1000"
    editor.fields["process.user.gid"].value = "100"
    editor.fields["process.user.additionalGids"].value = "10, 20"
    editor.fields["process.terminal"].value = False
    editor.fields["hostname"].value = "box"
    editor.fields["root.readonly"].value = False
    editor.fields["linux.maskedPaths"].value = "/proc/kcore\n/secret"
    editor.fields["linux.resources.memory.limit"].value = "256m"
    editor.fields["linux.resources.cpu.shares"].value = "512"
    editor.fields["linux.resources.pids.limit"].value = "64"
    spec = editor.spec
    assert spec.process.args == ["sh", "-c", "echo hello world"]
    assert spec.process.env == ["PATH=/bin", "GREETING=hi there"]
    assert spec.process.cwd == "/tmp"
    assert (spec.process.user.uid, spec.process.user.gid) == (1000, 100)
    assert spec.process.user.additional_gids == [10, 20]
    assert spec.process.terminal is False
    assert spec.hostname == "box"
    assert spec.root.readonly is False
    assert spec.linux.masked_paths == ["/proc/kcore", "/secret"]
    assert spec.linux.resources.memory.limit == 256 * 2**20
    assert spec.linux.resources.cpu.shares == 512
    assert spec.linux.resources.pids.limit == 64
    assert spec.linux.resources.devices[0].access == "rwm"  # what the form does not show is kept
    assert len(seen) == 13 and seen[-1] is spec
    assert preview_json(editor) == spec.to_dict()
    assert editor.diff_view.value == spec.diff()._repr_html_()
    assert "box" in editor.diff_view.value and "hostname" in editor.diff_view.value
    assert editor.problems == []


def test_capability_grid_and_presets(editor):
    editor.capability_boxes[("CAP_SYS_ADMIN", "bounding")].value = True
    editor.capability_boxes[("CAP_KILL", "ambient")].value = False
    caps = editor.spec.process.capabilities
    assert caps.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]
    assert caps.ambient == ["CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]
    assert caps.inheritable is None  # absent and left empty: stays absent
    editor.use_capability_preset("docker default")
    caps = editor.spec.process.capabilities
    docker = CAPABILITY_PRESETS["docker default"]
    assert set(caps.bounding) == set(docker["bounding"]) and len(caps.bounding) == 14
    assert caps.ambient == []
    editor.capability_presets.value = "all (privileged)"  # the toggle buttons apply a preset too
    assert sorted(editor.spec.process.capabilities.bounding) == sorted(ALL_CAPABILITIES)
    assert editor.capability_presets.value is None
    editor.use_capability_preset("none")
    assert editor.spec.process.capabilities.bounding == []


def test_namespaces_toggles_and_paths(editor):
    editor.fields["linux.namespaces.network"].value = False
    editor.fields["linux.namespaces.cgroup"].value = True
    editor.fields["linux.namespaces.ipc.path"].value = "/proc/1/ns/ipc"
    namespaces = [(ns.type, ns.path) for ns in editor.spec.linux.namespaces]
    assert namespaces == [("pid", None), ("ipc", "/proc/1/ns/ipc"), ("uts", None), ("mount", None),
                          ("cgroup", None)]


def test_mount_rows_add_edit_remove(editor):
    rows = editor.mount_rows
    assert len(rows.rows) == len(default_spec().mounts)
    rows.add_button.click()  # a new, still empty, row: not valid yet
    assert len(editor.spec.mounts) == 7
    assert "mounts[7].destination" in message(editor, "mounts")
    _, cells, _ = rows.rows[-1]
    cells[2].value = "/srv/data"
    cells[0].value = "/data"
    assert editor.spec.mounts[-1].to_dict() == {"destination": "/data", "type": "bind", "source": "/srv/data",
                                                "options": ["rbind", "ro"]}
    assert message(editor, "mounts").strip() == ""
    _, cells, _ = rows.rows[0]
    cells[3].value = "nosuid, noexec"
    assert editor.spec.mounts[0].options == ["nosuid", "noexec"]
    remove_button = rows.rows[1][2].children[-1]
    remove_button.click()
    assert [m.destination for m in editor.spec.mounts][:2] == ["/proc", "/dev/pts"]


def test_rlimit_rows(editor):
    rows = editor.rlimit_rows
    rows.add_row({"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}, notify=True)
    assert editor.spec.process.rlimits[-1].to_dict() == {"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}
    _, cells, _ = rows.rows[-1]
    cells[2].value = "unlimited"
    assert editor.spec.process.rlimits[-1].hard == 2**64 - 1
    cells[1].value = "lots"
    assert "process.rlimits[1].soft: not an integer: 'lots'" in message(editor, "process.rlimits")
    assert editor.spec.process.rlimits[-1].soft == 10


def test_seccomp_default_profile_on_and_off(editor):
    from pyoci_nb.runtime.seccomp import default_profile

    editor.fields["linux.seccomp"].value = True
    seccomp = editor.spec.to_dict()["linux"]["seccomp"]
    assert seccomp == default_profile(capabilities=editor.spec.process.capabilities.bounding)
    editor.fields["linux.seccomp"].value = False
    assert "seccomp" not in editor.spec.to_dict()["linux"]


# ----------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize("path, value, expected", [
    ("process.cwd", "relative/dir", "process.cwd: cwd must be an absolute path"),
    ("process.user.uid", "abc", "process.user.uid: not an integer: 'abc'"),
    ("process.user.uid", "-5", "must be >= 0"),
    ("process.args", "sh -c 'unbalanced", "cannot split into words"),
    ("process.env", "NOEQUALSIGN", "process.env[0]"),
    ("linux.resources.memory.limit", "lots", "not a size: 'lots'"),
    ("linux.maskedPaths", "relative/path", "linux.maskedPaths[0]"),
])
def test_invalid_input_shows_a_message_and_keeps_the_model(editor, path, value, expected):
    before = editor.spec.to_dict()
    editor.fields[path].value = value
    assert expected in message(editor, path)
    assert editor.spec.to_dict() == before
    assert preview_json(editor) == before
    assert editor.problems and "not applied" in editor.status.value
    # fixing another field does not sneak the bad value in: still refused
    editor.fields["hostname"].value = "other"
    assert editor.spec.hostname == "runc"


def test_invalid_namespace_path_is_shown_beside_the_namespaces(editor):
    editor.fields["linux.namespaces.network.path"].value = "netns/blue"
    assert "linux.namespaces[1].path" in message(editor, "linux.namespaces")
    assert editor.spec.linux.namespaces[1].path is None
    editor.fields["linux.namespaces.network.path"].value = "/var/run/netns/blue"
    assert editor.spec.linux.namespaces[1].path == "/var/run/netns/blue"
    assert message(editor, "linux.namespaces").strip() == ""


# ----------------------------------------------------------------------------- model -> form
def test_setting_the_spec_fills_the_form(editor, runtime_spec_dir):
    example = load_spec(runtime_spec_dir / "test/config/good/spec-example.json")
    editor.spec = example
    assert editor.fields["hostname"].value == "slartibartfast"
    assert editor.fields["process.user.uid"].value == "1"
    assert editor.fields["process.user.additionalGids"].value == "5, 6"
    assert editor.fields["linux.namespaces.time"].value is True
    assert editor.fields["linux.resources.memory.limit"].value == str(536870912)
    assert editor.capability_boxes[("CAP_NET_BIND_SERVICE", "ambient")].value is True
    assert editor.capability_boxes[("CAP_KILL", "ambient")].value is False
    assert editor.fields["linux.seccomp"].value is True
    assert len(editor.mount_rows.rows) == len(example.mounts)
    assert preview_json(editor) == example.to_dict()
    # applying an untouched form changes nothing (order, unknown fields, hidden sections kept)
    assert editor.apply() is True
    assert editor.spec.to_dict() == example.to_dict()
    # a dict is accepted and validated too
    editor.spec = default_spec().to_dict()
    assert editor.fields["hostname"].value == "runc"
    with pytest.raises(Exception, match="process.cwd"):
        editor.spec = dict(default_spec().to_dict(), process=dict(default_spec().to_dict()["process"], cwd="x"))
    assert editor.spec.to_dict() == default_spec().to_dict()


def test_setting_the_spec_clears_old_messages(editor):
    editor.fields["process.cwd"].value = "bad"
    assert message(editor, "process.cwd")
    editor.spec = default_spec()
    assert message(editor, "process.cwd").strip() == ""
    assert editor.fields["process.cwd"].value == "/"
    assert editor.problems == []


def test_parse_size():
    assert parse_size("1073741824") == 2**30
    assert parse_size("512m") == 512 * 2**20 and parse_size("1G") == 2**30 and parse_size("64KiB") == 64 * 1024
    assert parse_size("-1") == -1 and parse_size("  ") is None


# ----------------------------------------------------------------------------- BundleBrowser
def test_bundle_browser_lists_the_rootfs_lazily_and_never_leaves_it(busybox_bundle, tmp_path):
    from pyoci_nb.bundle import Bundle

    (busybox_bundle / "rootfs" / "escape").symlink_to("/etc")
    browser = BundleBrowser(Bundle(busybox_bundle))
    labels = [label for label, _ in browser.listing.options]
    assert "bin/" in labels and "etc/" in labels and "escape -> /etc" in labels
    assert "config valid" in re.sub(r"<[^>]+>", " ", browser.header.value).replace("  ", " ")
    assert "Spec" in browser.config_view.value and "valid" in browser.validation_view.value
    browser.listing.value = "bin"  # selecting a directory opens it
    assert browser.current.as_posix() == "bin"
    assert "busybox" in [name for _, name in browser.listing.options]
    browser.listing.value = "busybox"  # a file: its facts
    assert "/bin/busybox" in browser.info.value and "bytes" in browser.info.value
    browser.open_directory("../../..")  # clamped at the rootfs
    assert browser.current.as_posix() == "." and browser.up_button.disabled
    browser.listing.value = "escape"  # a symlink is shown, never followed
    assert browser.current.as_posix() == "." and "symlink" in browser.info.value
    browser.open_directory("escape")
    assert "not a directory" in browser.info.value and browser.current.as_posix() == "."
    browser.max_entries = 5
    browser.open_directory("bin")
    assert len(browser.listing.options) == 5 and "first 5 of" in browser.location.value


def test_bundle_browser_shows_problems_of_a_broken_bundle(busybox_bundle):
    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["cwd"] = "not/absolute"
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    browser = BundleBrowser(str(busybox_bundle))
    assert "process.cwd" in browser.validation_view.value
    assert "1 problem" in browser.header.value
    assert "config.json unreadable" in browser.config_view.value


# ----------------------------------------------------------------------------- ContainerPanel
@pytest.mark.root
def test_container_panel_drives_a_real_container(busybox_bundle, state_root, container_id):
    from pyoci_nb.runtime.container import Container

    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "sleep 300 & wait"]
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    container = Container.create(str(busybox_bundle), id=container_id, root=str(state_root))
    panel = ContainerPanel(container)
    try:
        assert "created" in panel.state_view.value and not panel.buttons["start"].disabled
        assert panel.start() is True
        state = container.state()
        assert state["status"] == "running"
        assert 'class="pyoci-svg-lit"' in panel.state_view.value
        lit = re.findall(r'class="pyoci-svg-lit"[^>]*/><text [^>]*>([a-z]+)<', panel.state_view.value)
        assert lit == ["running"]
        assert f"container (pid {state['pid']})" in panel.state_view.value
        for _ in range(50):  # the shell starts its sleep child
            panel.refresh()
            if "sleep 300" in panel.processes_view.value:
                break
            import time

            time.sleep(0.1)
        assert f"<td>{state['pid']}</td>" in panel.processes_view.value
        assert "sleep 300" in panel.processes_view.value
        assert panel.start() is False  # not created any more: the error is shown, not raised
        assert "start failed" in panel.message.value
        panel.signal.value = "SIGKILL"
        assert panel.kill() is True
        container.wait(timeout=10)
        panel.refresh()
        assert container.state()["status"] == "stopped" and panel.buttons["start"].disabled
        assert "no processes" in panel.processes_view.value
        assert panel.delete() is True
        assert "state unavailable" in panel.state_view.value and panel.buttons["delete"].disabled
    finally:
        panel.close()


@pytest.mark.root
def test_container_panel_auto_refresh_thread_stops(busybox_bundle, state_root, container_id):
    from pyoci_nb.runtime.container import Container

    container = Container.create(str(busybox_bundle), id=container_id, root=str(state_root))
    panel = ContainerPanel(container, interval=0.05)
    panel.auto_refresh.value = True
    thread = panel._thread
    assert thread is not None and thread.is_alive()
    panel.auto_refresh.value = False
    assert not thread.is_alive()
    panel.close()
