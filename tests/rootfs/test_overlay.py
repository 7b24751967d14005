"""Overlay snapshots (``pyoci_nb.rootfs.overlay``) under real containers: the root filesystem is
an overlay (lower: the session's busybox rootfs, never written; upper/work: per container)
mounted by the runtime on "/" in the container's mount namespace.  Container tests run with
this checkout's pyoci and with runc 1.1 (``runtime``), which mounts an overlay on "/" the same
way -- the tests check what a runtime really does, not what pyoci happens to do."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.overlay import Snapshot, escape_option_path, overlay_support
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.spec.defaults import default_config

REPO = Path(__file__).resolve().parent.parent.parent
RUNC = "/usr/sbin/runc"


# --- helpers ---------------------------------------------------------------------------------
def tree_digest(root: Path) -> dict:
    """Everything ``ls -lR`` would show of ``root`` plus file contents: to prove a lower
    directory did not change."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            extra = os.readlink(path) if stat.S_ISLNK(st.st_mode) else \
                Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else st.st_rdev
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, extra)
    st = os.lstat(root)
    found["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, None)
    return found


def mounted_under(path: Path) -> list[str]:
    """Lines of this process's mountinfo naming ``path`` (a mount point or an overlay layer)."""
    text = str(path)
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if text in line]


def run_cli(runtime: str, *args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``<runtime> args`` (pyoci: this checkout's CLI), output through files (a container may
    keep a pipe open)."""
    argv = [sys.executable, "-m", "pyoci_nb"] if runtime == "pyoci" else [RUNC]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([*argv, *map(str, args)], cwd=cwd, stdout=out, stderr=err, env=env,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


class Work:
    """A test's area: snapshots, bundles and a state root per runtime; ``cleanup`` force-deletes
    every container and removes every snapshot (also after a failure)."""

    def __init__(self, base: Path, runtime: str):
        self.base = base
        self.runtime = runtime
        self.state = base / "state"
        self.snapshots: list[Snapshot] = []
        self.ids: list[str] = []

    def snapshot(self, lowerdirs, name: str = "snap") -> Snapshot:
        snap = Snapshot.create(lowerdirs, self.base / name)
        self.snapshots.append(snap)
        return snap

    def bundle(self, snap: Snapshot, args: list[str], *, readonly: bool = False, mounts=(), name="bundle",
               edit=None) -> Path:
        config = default_config()
        config["process"]["terminal"] = False
        config["process"]["args"] = args
        config["root"]["readonly"] = readonly
        config["mounts"] += list(mounts)
        snap.apply_to(config)
        if edit:
            edit(config)
        bundle = self.base / name
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle

    def run(self, bundle: Path, *extra) -> subprocess.CompletedProcess:
        container_id = "ov-" + uuid.uuid4().hex[:10]
        self.ids.append(container_id)
        return run_cli(self.runtime, "--root", self.state, "run", *extra, container_id, cwd=bundle)

    def cleanup(self) -> None:
        for container_id in self.ids:
            run_cli(self.runtime, "--root", self.state, "delete", "--force", container_id, cwd=self.base)
        for snap in self.snapshots:
            snap.remove()


@pytest.fixture(params=["pyoci", "runc"])
def runtime(request) -> str:
    if request.param == "runc" and not os.access(RUNC, os.X_OK):
        pytest.skip(f"{RUNC} is not installed (scripts/setup.sh installs it)")
    return request.param


@pytest.fixture
def work(tmp_path, runtime):
    if os.geteuid() != 0:
        pytest.skip("container tests need root")
    reason = overlay_support()
    if reason:
        pytest.skip(reason)
    w = Work(tmp_path, runtime)
    try:
        yield w
    finally:
        w.cleanup()


@pytest.fixture
def lower(busybox_rootfs):
    """The shared, read-only lower layer, and a check at the end that it did not change."""
    before = tree_digest(busybox_rootfs)
    yield busybox_rootfs
    assert tree_digest(busybox_rootfs) == before, "a container changed the lower directory"


# --- option escaping (no container) -----------------------------------------------------------
def test_escape_option_path_escapes_colon_and_backslash():
    assert escape_option_path("/plain/dir") == "/plain/dir"
    assert escape_option_path("/a:b") == "/a\\:b"
    assert escape_option_path("/a\\b") == "/a\\\\b"
    assert escape_option_path("/x\\:y") == "/x\\\\\\:y"


@pytest.mark.parametrize("bad", ["/a,b", "/a,upperdir=/etc", "/nul\0x", "/new\nline"])
def test_escape_option_path_refuses_commas_nul_and_newlines(bad):
    with pytest.raises(RootfsError) as info:
        escape_option_path(bad, where="lowerdirs[0]")
    assert "lowerdirs[0]" in str(info.value)


def test_mount_entry_and_apply_to(tmp_path):
    top = tmp_path / "layer:top"
    bottom = tmp_path / "bottom"
    top.mkdir()
    bottom.mkdir()
    snap = Snapshot.create([top, bottom], tmp_path / "snap")
    try:
        assert snap.lowerdirs == (top, bottom)
        assert (snap.upper, snap.work, snap.path) == (tmp_path / "snap/upper", tmp_path / "snap/work", tmp_path / "snap")
        assert stat.S_IMODE(os.stat(snap.path).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(snap.upper).st_mode) == stat.S_IMODE(os.stat(top).st_mode)
        entry = snap.mount_entry()
        assert entry == {"destination": "/", "type": "overlay", "source": "overlay",
                         "options": [f"lowerdir={tmp_path}/layer\\:top:{bottom}",
                                     f"upperdir={snap.upper}", f"workdir={snap.work}"]}
        config = {"root": {"path": "rootfs", "readonly": True},
                  "mounts": [{"destination": "/proc", "type": "proc"}, {"destination": "//", "type": "tmpfs"}]}
        assert snap.apply_to(config) is config
        assert config["root"] == {"path": str(snap.path / "rootfs"), "readonly": True}
        assert config["mounts"] == [entry, {"destination": "/proc", "type": "proc"}]
        again = Snapshot.open(snap.path)
        assert (again.path, again.lowerdirs) == (snap.path, snap.lowerdirs)
    finally:
        snap.remove()
    assert not snap.path.exists()
    snap.remove()  # idempotent


def test_overlay_support_is_cached():
    first = overlay_support()
    assert first is None or (isinstance(first, str) and first)
    assert overlay_support() is first


# --- hostile input ------------------------------------------------------------------------------
def test_refuses_a_lowerdir_with_a_comma(tmp_path, busybox_rootfs):
    comma = tmp_path / "a,upperdir=x"
    comma.mkdir()
    with pytest.raises(RootfsError, match="','") as info:
        Snapshot.create([comma], tmp_path / "snap")
    assert "lowerdirs[0]" in str(info.value)
    assert not (tmp_path / "snap").exists()


def test_refuses_a_lowerdir_that_is_a_symlink(tmp_path):
    """The rule: a lower directory is given as the directory itself.  A link (here to the
    host's /etc) is refused -- it could be pointed elsewhere after the check -- and the error
    names the link and its target.  A path through linked parents is stored resolved."""
    link = tmp_path / "layer"
    link.symlink_to("/etc")
    with pytest.raises(RootfsError, match="symbolic link") as info:
        Snapshot.create([link], tmp_path / "snap")
    assert str(link) in str(info.value) and "/etc" in str(info.value)
    assert not (tmp_path / "snap").exists()
    real = tmp_path / "real"
    (real / "layer").mkdir(parents=True)
    (tmp_path / "via").symlink_to(real)
    snap = Snapshot.create([tmp_path / "via" / "layer"], tmp_path / "snap")
    try:
        assert snap.lowerdirs == (real / "layer",)
    finally:
        snap.remove()


def test_refuses_missing_and_non_directory_lowerdirs(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(RootfsError, match="cannot be opened"):
            Snapshot.create([bad], tmp_path / "snap")
    with pytest.raises(RootfsError, match="no lower directories"):
        Snapshot.create([], tmp_path / "snap")
    with pytest.raises(RootfsError, match="no lower directories"):
        Snapshot.create(str(tmp_path), tmp_path / "snap")  # a string is not a list of layers
    assert not (tmp_path / "snap").exists()


def test_refuses_a_dest_that_is_a_symlink_or_not_empty_or_not_ours(tmp_path, busybox_rootfs):
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "dest-link").symlink_to(victim)
    with pytest.raises(RootfsError, match="not a directory"):
        Snapshot.create([busybox_rootfs], tmp_path / "dest-link")
    assert list(victim.iterdir()) == []
    (victim / "keep").write_text("x")
    with pytest.raises(RootfsError, match="not empty"):
        Snapshot.create([busybox_rootfs], victim)
    assert [p.name for p in victim.iterdir()] == ["keep"]
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        with pytest.raises(RootfsError, match="owned by someone else"):
            Snapshot.create([busybox_rootfs], foreign)
        assert foreign.is_dir() and list(foreign.iterdir()) == []


def test_refuses_a_snapshot_inside_its_layer(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    with pytest.raises(RootfsError, match="overlap"):
        Snapshot.create([layer], layer / "snap")
    assert list(layer.iterdir()) == []


def test_open_refuses_what_is_not_a_snapshot(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(RootfsError, match="not a snapshot"):
        Snapshot.open(tmp_path / "plain")


# --- real containers ------------------------------------------------------------------------------
@pytest.mark.root
def test_copy_up_and_whiteout(work, lower):
    snap = work.snapshot([lower])
    script = "echo new > /new-file && echo extra >> /etc/passwd && rm /bin/ls && test ! -e /bin/ls && tail -n 1 /etc/passwd"
    bundle = work.bundle(snap, ["sh", "-c", script])
    result = work.run(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "extra\n"
    assert (snap.upper / "new-file").read_text() == "new\n"
    assert not (lower / "new-file").exists()
    assert (snap.upper / "etc/passwd").read_text().endswith("extra\n")    # copied up, then changed
    assert not (lower / "etc/passwd").read_text().endswith("extra\n")
    whiteout = os.lstat(snap.upper / "bin/ls")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.path.lexists(lower / "bin/ls")


@pytest.mark.root
def test_layers_in_order_with_escaped_paths(work, lower, tmp_path):
    """Two lower layers, the top one at a path with ':' and '\\' (escaped in lowerdir=): its
    files hide the busybox layer's, the rest shows through."""
    top = tmp_path / "top:lay\\er"
    (top / "etc").mkdir(parents=True)
    (top / "etc/hostname").write_text("from-the-top-layer\n")
    top_before = tree_digest(top)
    snap = work.snapshot([top, lower])
    bundle = work.bundle(snap, ["sh", "-c", "cat /etc/hostname; test -x /bin/busybox && echo busybox"])
    result = work.run(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from-the-top-layer\nbusybox\n"
    assert tree_digest(top) == top_before


@pytest.mark.root
def test_two_containers_on_one_lower_are_isolated(work, lower):
    """Both run at the same time over the same lower directory: each sees only its own writes."""
    script = "echo {me} > /who; echo {me} > /only-{me}; sleep 1; cat /who; ls / | grep only-"
    snaps = [work.snapshot([lower], f"snap-{me}") for me in ("a", "b")]
    bundles = [work.bundle(snap, ["sh", "-c", script.format(me=me)], name=f"bundle-{me}")
               for snap, me in zip(snaps, ("a", "b"))]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(work.run, bundles))
    for result, me, snap in zip(results, ("a", "b"), snaps):
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{me}\nonly-{me}\n"
        assert sorted(p.name for p in snap.upper.iterdir()) == [f"only-{me}", "who"]


@pytest.mark.root
def test_later_mounts_land_inside_the_overlay(work, lower):
    """/proc, /dev and a tmpfs at /tmp are mounted on top of the overlay (their parent mount is
    the overlay on "/"), and what goes to /tmp does not reach the upper directory."""
    snap = work.snapshot([lower])
    tmpfs = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
    bundle = work.bundle(snap, ["sh", "-c", "echo x > /tmp/in-tmpfs && cat /proc/self/mountinfo"], mounts=[tmpfs])
    result = work.run(bundle)
    assert result.returncode == 0, result.stderr
    table = {fields[4]: fields for fields in (line.split() for line in result.stdout.splitlines())}
    root = table["/"]
    assert root[root.index("-") + 1] == "overlay"
    for point in ("/proc", "/dev", "/tmp"):
        assert table[point][1] == root[0], f"{point} is not mounted on the overlay: {table[point]}"
    assert not (snap.upper / "tmp").exists()


@pytest.mark.root
def test_readonly_root_makes_the_overlay_read_only(work, lower):
    snap = work.snapshot([lower])
    bundle = work.bundle(snap, ["sh", "-c", "touch /new 2>&1; rm /bin/ls 2>&1; echo done"], readonly=True)
    result = work.run(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Read-only file system") == 2, result.stdout
    assert list(snap.upper.iterdir()) == []


@pytest.mark.root
def test_no_pivot(work, lower):
    snap = work.snapshot([lower])
    bundle = work.bundle(snap, ["sh", "-c", "echo hi > /x && grep ' / / ' /proc/self/mountinfo"])
    result = work.run(bundle, "--no-pivot")
    assert result.returncode == 0, result.stderr
    assert " - overlay " in result.stdout
    assert (snap.upper / "x").read_text() == "hi\n"


@pytest.mark.root
def test_remove_does_not_follow_links_planted_in_upper(work, lower, tmp_path):
    """The container plants symbolic links to host paths in its upper directory (and a
    directory it made unreadable); ``remove`` deletes the links, not what they point at, and
    leaves no mount and no directory."""
    victim = tmp_path / "victim"
    (victim / "dir").mkdir(parents=True)
    (victim / "file").write_text("precious\n")
    (victim / "dir/inner").write_text("precious\n")
    snap = work.snapshot([lower])
    script = (f"ln -s {victim} /to-victim && ln -s {victim}/file /to-file && mkdir -p /etc/d && "
              f"ln -s {victim}/dir /etc/d/link && ln -s / /to-root && mkdir /locked && touch /locked/f && "
              f"chmod 000 /locked")
    result = work.run(work.bundle(snap, ["sh", "-c", script]))
    assert result.returncode == 0, result.stderr
    assert os.readlink(snap.upper / "to-victim") == str(victim)
    snap.remove()
    assert not snap.path.exists()
    assert mounted_under(snap.path) == []
    assert (victim / "file").read_text() == "precious\n"
    assert (victim / "dir/inner").read_text() == "precious\n"
    snap.remove()  # idempotent


@pytest.mark.root
def test_remove_unmounts_a_mount_left_on_the_mount_point(work, lower):
    """Should the overlay have been mounted on the snapshot in this mount namespace (by hand,
    or by an engine that does it itself), ``remove`` unmounts it before deleting anything."""
    snap = work.snapshot([lower])
    options = ",".join(snap.mount_entry()["options"])
    sc.mount("overlay", str(snap.path / "rootfs"), "overlay", 0, options)
    try:
        (snap.path / "rootfs/written").write_text("x")
        assert mounted_under(snap.path)
        snap.remove()
        assert mounted_under(snap.path) == []
        assert not snap.path.exists()
    finally:
        if mounted_under(snap.path):
            sc.umount2(str(snap.path / "rootfs"), sc.MNT_DETACH)


# --- what the runtime refuses ---------------------------------------------------------------------
@pytest.mark.root
@pytest.mark.parametrize("case", ["tmpfs-on-root", "overlay-not-first", "no-mount-namespace"])
def test_runtime_refuses_a_root_mount_it_cannot_make_right(work, lower, case):
    if work.runtime != "pyoci":
        pytest.skip("pyoci's own rules (runc accepts these and hides mounts under the root)")
    snap = work.snapshot([lower])

    def edit(config):
        if case == "tmpfs-on-root":
            config["mounts"][0] = {"destination": "/", "type": "tmpfs", "source": "tmpfs"}
        elif case == "overlay-not-first":
            config["mounts"].append(config["mounts"].pop(0))
        else:
            config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]

    result = work.run(work.bundle(snap, ["true"], edit=edit))
    assert result.returncode != 0
    expected = {"tmpfs-on-root": "is not supported: a mount on the container's root is supported for type overlay",
                "overlay-not-first": "is not the first mount",
                "no-mount-namespace": "needs a mount namespace of the container's own"}[case]
    assert expected in result.stderr and "mounts[" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not work.state.exists() or list(work.state.iterdir()) == []
    assert mounted_under(snap.path) == [] and list(snap.upper.iterdir()) == []
