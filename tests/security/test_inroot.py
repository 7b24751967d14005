"""The one path resolver (``pyoci_nb.runtime.inroot``) against a hostile root filesystem.

A rootfs full of links that try to leave it (absolute targets, ``..`` chains, /proc magic
links, loops) is resolved with openat2 and with the O_PATH walk the runtime falls back to on
older kernels: both must stay inside the root and agree; ``rootfs.tree.resolve_in_root`` (the
host-side view) must give the same answer; creating a missing component must not follow a
symlink put in its place.  These run the real system calls on a real directory tree.
"""

from __future__ import annotations

import errno
import os

import pytest

from pyoci_nb.rootfs.tree import resolve_in_root as tree_resolve
from pyoci_nb.runtime import inroot

pytestmark = pytest.mark.pyoci_only

PATHS = ["/", "/a", "/a/abs", "/a/abs/x", "/a/up", "/a/up/x", "/a/dotdot/etc", "/proc-link/x",
         "/chain", "/chain/deeper", "/missing/../a", "/a/missing/../../b", "/file/x", "/b/escape/target"]


@pytest.fixture
def hostile_root(tmp_path):
    """A root whose links all point out of it, and a host directory they name."""
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "file").write_text("")
    (root / "a" / "abs").symlink_to(outside)                    # absolute: restarts at the root
    (root / "a" / "up").symlink_to("../../../../outside")       # .. stops at the root
    (root / "a" / "dotdot").symlink_to("/../../..")
    (root / "proc-link").symlink_to("/proc/self/root")          # a magic link's text, in the root
    (root / "chain").symlink_to("a/up")
    (root / "b" / "escape").symlink_to("../../outside/x/..")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    return root, outside


def _resolve(root_fd: int, path: str, use_openat2: bool) -> tuple[str, list[str]]:
    saved = inroot._have_openat2
    inroot._have_openat2 = None if use_openat2 else False
    try:
        with inroot.open_in_root(root_fd, path) as resolved:
            return inroot.fd_location(resolved.fd), list(resolved.missing)
    finally:
        inroot._have_openat2 = saved


@pytest.mark.parametrize("path", PATHS)
def test_every_resolution_stays_in_the_root_and_both_ways_agree(hostile_root, path):
    root, outside = hostile_root
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        via_openat2 = _resolve(root_fd, path, use_openat2=True)
        via_walk = _resolve(root_fd, path, use_openat2=False)
    finally:
        os.close(root_fd)
    for location, _missing in (via_openat2, via_walk):
        assert inroot.is_inside(location, str(root)), f"{path} resolved to {location}, outside {root}"
        assert not inroot.is_inside(location, str(outside))
    if path != "/proc-link/x":  # openat2 refuses the magic link; the walk reads its text
        assert via_openat2 == via_walk
    full = os.path.join(via_walk[0], *via_walk[1])
    assert str(tree_resolve(root, path)) == full


def test_symlink_loops_end_in_eloop(hostile_root):
    root, _ = hostile_root
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for use_openat2 in (True, False):
            with pytest.raises(OSError) as info:
                _resolve(root_fd, "/loop1/x", use_openat2)
            assert info.value.errno == errno.ELOOP
    finally:
        os.close(root_fd)


def test_escape_through_links_is_seen_from_the_host_view(hostile_root):
    root, _ = hostile_root
    with pytest.raises(inroot.EscapesRoot):
        tree_resolve(root, "/a/up", confine=False)


@pytest.mark.parametrize("like_dir", [True, False])
def test_create_does_not_follow_a_symlink_swapped_in(hostile_root, like_dir):
    """Between the resolution (``new`` missing) and the creation, ``new`` becomes a link to a
    host directory -- the other container's move in CVE-2021-30465: create must fail, and
    nothing may appear outside the root."""
    root, outside = hostile_root
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        resolved = inroot.open_in_root(root_fd, "/b/new/inner" if like_dir else "/b/new")
        with resolved:
            assert resolved.missing
            (root / "b" / "new").symlink_to(outside)
            with pytest.raises(OSError) as info:
                resolved.create(like_dir)
            assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    finally:
        os.close(root_fd)
    assert sorted(os.listdir(outside)) == ["x"]
