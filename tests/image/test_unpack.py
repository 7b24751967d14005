"""Layers unpacked with whiteouts give exactly ``umoci unpack``'s tree -- flat, and through a real
overlay mount of the store's shared layers; hostile layers are refused with nothing outside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from registry_harness import tar_bytes, tree_of

import pyoci_nb
from pyoci_nb.image import ImageError, pull

pytestmark = pytest.mark.root
UMOCI = shutil.which("umoci")
OWNED = {"uid": 1000, "gid": 1001}


def whiteout_layers() -> list[bytes]:
    """Three layers over busybox: files, dirs, links; then whiteouts (plain and opaque) of them."""
    second = tar_bytes([
        ("etc", "dir", None),
        ("etc/motd", "file", b"second\n"),
        ("etc/keep", "file", b"keep\n"),
        ("data", "dir", None, OWNED),
        ("data/a", "file", b"a\n", {"mode": 0o600, **OWNED}),
        ("data/sub", "dir", None),
        ("data/sub/deep", "file", b"deep\n"),
        ("opaque", "dir", None),
        ("opaque/old1", "file", b"old1\n"),
        ("opaque/old2", "dir", None),
        ("opaque/old2/x", "file", b"x\n"),
        ("tool", "file", b"#!/bin/sh\necho tool\n", {"mode": 0o4755}),
        ("tool-link", "symlink", "/tool"),
        ("tool-hard", "hardlink", "tool"),
        ("replaced", "dir", None),
        ("replaced/inside", "file", b"inside\n"),
    ])
    third = tar_bytes([
        ("etc", "dir", None),
        ("etc/.wh.motd", "file", b""),
        ("data", "dir", None, OWNED),
        ("data/.wh.sub", "file", b""),
        ("data/b", "file", b"b\n"),
        ("opaque", "dir", None, {"mode": 0o750}),
        ("opaque/.wh..wh..opq", "file", b""),
        ("opaque/new", "file", b"new\n"),
        ("replaced", "file", b"now a file\n"),
        ("gone-before", "file", b""),
        (".wh.gone-before", "file", b""),          # hides nothing of its own layer
    ])
    return [second, third]


@pytest.fixture
def whiteout_image(registry, layout, store, busybox_layer):
    manifest = layout.image([busybox_layer, *whiteout_layers()],
                            config={"Env": ["PATH=/bin", "GREETING=hi"], "Cmd": ["sh", "-c", "echo $GREETING"],
                                    "WorkingDir": "/data", "User": "1000:1001",
                                    "Labels": {"org.example.team": "nb"}, "ExposedPorts": {"8080/tcp": {}}})
    layout.tag("wh", manifest)
    registry.push(layout.path, "wh", "demo/wh:1")
    return pull(f"{registry.host}/demo/wh:1", store=store, progress=False)


def umoci_tree(layout, tmp_path) -> dict:
    if UMOCI is None:
        pytest.skip("umoci is needed (scripts/setup.sh installs it)")
    bundle = tmp_path / "umoci-bundle"
    subprocess.run([UMOCI, "unpack", "--image", f"{layout.path}:wh", str(bundle)], check=True, capture_output=True)
    try:
        return tree_of(bundle / "rootfs"), json.loads((bundle / "config.json").read_text())
    finally:
        shutil.rmtree(bundle)


def test_flat_unpack_gives_umocis_tree_and_config(whiteout_image, layout, tmp_path):
    expected, umoci_config = umoci_tree(layout, tmp_path)
    bundle = pyoci_nb.Bundle.from_image(whiteout_image, tmp_path / "flat", overlay=False)
    ours = tree_of(bundle.path / "rootfs")
    assert ours == expected
    # the whiteouts did their work (and the test image exercises them)
    assert "etc/motd" not in ours and "etc/keep" in ours and "data/sub" not in ours
    assert sorted(p for p in ours if p.startswith("opaque/")) == ["opaque/new"]
    assert "gone-before" in ours and ours["replaced"][4] is not None
    config = json.loads((bundle.path / "config.json").read_text())
    for key in ("args", "env", "cwd", "user"):
        assert config["process"][key] == umoci_config["process"][key], key
    assert config["annotations"]["org.example.team"] == "nb"
    assert config["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert config["root"] == {"path": "rootfs", "readonly": False}
    assert os.stat(bundle.path).st_mode & 0o777 == 0o700


def _overlay_view(lowerdirs: list[Path]) -> dict:
    """The tree of a real read-only overlay mount of ``lowerdirs`` (top first), mounted in a
    private mount namespace that goes away with the command."""
    walker = ("import json,sys; sys.path.insert(0, sys.argv[1]); from registry_harness import tree_of; "
              "from pathlib import Path; print(json.dumps(tree_of(Path(sys.argv[2]))))")
    script = (f'mount -t overlay overlay -o lowerdir={":".join(map(str, lowerdirs))} /mnt && '
              f'exec "{sys.executable}" -c "$0" "{Path(__file__).parent}" /mnt')
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, walker],
                         check=True, capture_output=True, text=True).stdout
    return {k: tuple(v) for k, v in json.loads(out).items()}


def test_store_layers_as_overlay_lower_dirs_give_umocis_tree(whiteout_image, layout, tmp_path):
    expected, _ = umoci_tree(layout, tmp_path)
    dirs = list(reversed(whiteout_image.layer_dirs()))
    assert _overlay_view(dirs) == expected
    third = dirs[0]
    assert os.stat(third / "etc" / "motd").st_rdev == 0 and os.path.exists(third / "etc" / "motd")
    assert os.getxattr(third / "opaque", "trusted.overlay.opaque") == b"y"


def test_bundle_from_image_runs_with_the_images_env_on_an_overlay(whiteout_image, tmp_path, store):
    root = tmp_path / "state"
    bundle = pyoci_nb.Bundle.from_image(whiteout_image, tmp_path / "ov")
    assert (bundle.path / "snapshot" / "upper").is_dir()
    config = json.loads((bundle.path / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "echo $GREETING; pwd; id -u; cat /data/b; echo w > /data/new; cat /etc/keep"]
    assert config["process"]["user"] == {"uid": 1000, "gid": 1001}       # the image's User
    (bundle.path / "config.json").write_text(json.dumps(config))
    result = pyoci_nb.run(bundle, capture_output=True, root=str(root))
    assert result.returncode == 0, result.stderr
    assert (result.stdout.decode().split(), result.stderr) == (["hi", "/data", "1000", "b", "keep"], b"")
    assert (bundle.path / "snapshot" / "upper" / "data" / "new").read_text() == "w\n"   # copy-on-write
    assert not (whiteout_image.layer_dirs()[-1] / "data" / "new").exists()


def test_per_layer_changes_added_changed_and_whited_out(whiteout_image):
    assert "<th>files</th>" in whiteout_image._repr_html_() and "+" not in whiteout_image._repr_html_().split("files")[1][:60]
    base, second, third = whiteout_image.changes()
    assert "bin/busybox" in base["added"] and base["changed"] == base["removed"] == []
    assert {"etc/motd", "data/a", "tool", "opaque/old2/x"} <= set(second["added"]) and second["removed"] == []
    assert third["removed"] == ["data/sub", "etc/motd", "opaque/*"]
    assert third["changed"] == ["replaced"] and "opaque/new" in third["added"] and "data/b" in third["added"]
    assert "-3</span>" in whiteout_image._repr_html_()


def test_the_store_lists_untags_and_prunes(whiteout_image, store):
    layers = whiteout_image.layer_dirs()
    assert all(p.is_dir() for p in layers)
    assert store.prune() == []                       # everything is in use
    assert store.untag(str(whiteout_image.reference.key))
    removed = store.prune()
    assert len(removed) == 3 + 3 + 2                 # 3 layer blobs, manifest, config ... and 3 unpacked layers
    assert not any(p.exists() for p in layers)
    assert list((store.root / "blobs" / "sha256").iterdir()) == []


HOSTILE = {
    "dotdot": [("../escaped", "file", b"x")],
    "absolute": [("/tmp/escaped", "file", b"x")],
    "write-through-absolute-link": [("etc", "symlink", "/OUTSIDE"), ("etc/passwd", "file", b"x")],
    "write-through-relative-link": [("up", "symlink", "../../../../../../OUTSIDE"), ("up/x", "file", b"x")],
    "hardlink-out": [("h", "hardlink", "../../../../OUTSIDE/secret")],
    "hardlink-absolute": [("h", "hardlink", "/etc/shadow")],
    "whiteout-dotdot": [(".wh...", "file", b"")],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "flat"])
def test_hostile_layers_are_refused_with_nothing_written_outside(name, overlay, registry, layout, store,
                                                                 busybox_layer, tmp_path):
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "secret").write_text("secret\n")
    entries = [(n, k, v.replace("/OUTSIDE", str(outside)) if isinstance(v, str) else v) for n, k, v in HOSTILE[name]]
    layout.tag("bad", layout.image([busybox_layer, tar_bytes(entries)]))
    registry.push(layout.path, "bad", "demo/hostile:1")
    image = pull(f"{registry.host}/demo/hostile:1", store=store, progress=False)
    with pytest.raises(ImageError) as info:
        pyoci_nb.Bundle.from_image(image, tmp_path / "bundle", overlay=overlay)
    assert "refusing tar member" in str(info.value) or "invalid name" in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "secret\n"
    assert not (tmp_path / "bundle").exists()
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert len(list((store.root / "layers" / "sha256").iterdir())) <= 1        # only the busybox layer
    assert list((store.root / "tmp").iterdir()) == []


def test_whiteouts_never_follow_a_lower_layers_link(registry, layout, store, busybox_layer, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important").write_text("keep me\n")
    first = tar_bytes([("lnk", "symlink", str(victim)), ("rel", "symlink", "../../../../../../" + str(victim))])
    second = tar_bytes([("lnk/.wh.important", "file", b""), ("rel/.wh..wh..opq", "file", b"")])
    layout.tag("wh", layout.image([busybox_layer, first, second]))
    registry.push(layout.path, "wh", "demo/wh-link:1")
    image = pull(f"{registry.host}/demo/wh-link:1", store=store, progress=False)
    with pytest.raises(ImageError):          # the relative link leaves the destination: refused
        pyoci_nb.Bundle.from_image(image, tmp_path / "flat", overlay=False)
    assert (victim / "important").read_text() == "keep me\n"


def test_trusted_overlay_xattrs_of_a_layer_are_not_applied(registry, layout, store, busybox_layer):
    layer = tar_bytes([("d", "dir", None, {"pax_headers": {"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                                            "SCHILY.xattr.user.note": "ok"}})])
    layout.tag("x", layout.image([busybox_layer, layer]))
    registry.push(layout.path, "x", "demo/xattr:1")
    top = pull(f"{registry.host}/demo/xattr:1", store=store, progress=False).layer_dirs()[-1]
    assert os.getxattr(top / "d", "user.note") == b"ok"
    with pytest.raises(OSError):
        os.getxattr(top / "d", "trusted.overlay.redirect")
