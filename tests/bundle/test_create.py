"""Bundle.create / Bundle(path) / Bundle.load / save / rootfs_path / reprs."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from pyoci_nb import Bundle
from pyoci_nb.errors import BundleError, ConfigError, RootfsError
from pyoci_nb.spec.defaults import default_config


def test_create_default_is_runc_spec_without_terminal_and_a_busybox_rootfs(tmp_path):
    bundle = Bundle.create(tmp_path / "b")
    expected = default_config()
    expected["process"]["terminal"] = False
    assert json.loads(bundle.config_path.read_text()) == expected
    assert bundle.rootfs_path == tmp_path / "b" / "rootfs"
    assert (bundle.rootfs_path / "bin/busybox").is_file()
    assert bundle.spec.process.terminal is False
    assert bundle.validate(for_start=True) == []


def test_create_with_a_spec_dict_and_an_empty_rootfs(tmp_path):
    config = default_config()
    config["root"] = {"path": "fs/root"}
    config["hostname"] = "made-by-test"
    bundle = Bundle.create(tmp_path / "b", spec=config, rootfs=None)
    assert bundle.rootfs_path == tmp_path / "b/fs/root"
    assert os.listdir(bundle.rootfs_path) == []
    assert Bundle.load(tmp_path / "b").spec.hostname == "made-by-test"


def test_create_copies_a_directory_faithfully(tmp_path, busybox_rootfs):
    bundle = Bundle.create(tmp_path / "b", rootfs=busybox_rootfs)
    assert os.readlink(bundle.rootfs_path / "bin/sh") == os.readlink(busybox_rootfs / "bin/sh")
    assert os.stat(bundle.rootfs_path / "tmp").st_mode == os.stat(busybox_rootfs / "tmp").st_mode


def test_create_from_a_tarball(tmp_path, busybox_rootfs):
    tarball = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name in sorted(os.listdir(busybox_rootfs)):
            archive.add(busybox_rootfs / name, arcname=name)
    bundle = Bundle.create(tmp_path / "b", rootfs=tarball)
    assert os.readlink(bundle.rootfs_path / "bin/sh") == os.readlink(busybox_rootfs / "bin/sh")
    assert bundle.validate(for_start=True) == []


@pytest.mark.root
def test_create_from_host_programs_runs_in_a_chroot(tmp_path):
    bundle = Bundle.create(tmp_path / "b", rootfs=["sh", "cat"])
    result = subprocess.run(["/usr/sbin/chroot", str(bundle.rootfs_path), "sh", "-c", "cat /etc/hostname"],
                            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pyoci"
    assert bundle.validate(for_start=True) == []


def test_create_with_the_default_host_rootfs(tmp_path):
    bundle = Bundle.create(tmp_path / "b", rootfs="host")
    for program in ("bin/sh", "bin/bash", "bin/ls", "usr/bin/python3"):
        assert os.path.lexists(bundle.rootfs_path / program), program
    assert bundle.validate(for_start=True) == []


def test_create_makes_missing_parents_and_removes_them_on_failure(tmp_path):
    with pytest.raises(RootfsError):
        Bundle.create(tmp_path / "new/parents/b", rootfs=["sh", "not-a-program-anywhere"])
    assert not (tmp_path / "new").exists()
    bundle = Bundle.create(tmp_path / "new/parents/b", rootfs=None)
    assert bundle.path.is_dir()


def test_create_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b/precious").write_text("keep")
    with pytest.raises(BundleError) as info:
        Bundle.create(tmp_path / "b")
    assert "not empty" in str(info.value)
    assert os.listdir(tmp_path / "b") == ["precious"]


def test_unknown_rootfs_is_an_error_and_nothing_is_created(tmp_path):
    with pytest.raises(BundleError) as info:
        Bundle.create(tmp_path / "b", rootfs="alpine-please")
    assert "alpine-please" in str(info.value) and "busybox" in str(info.value)
    assert not (tmp_path / "b").exists()


def test_failed_rootfs_build_leaves_nothing(tmp_path):
    with pytest.raises(RootfsError) as info:
        Bundle.create(tmp_path / "b", rootfs=["sh", "definitely-not-a-program"])
    assert "definitely-not-a-program" in str(info.value)
    assert not (tmp_path / "b").exists()


def test_absolute_root_path_cannot_be_built(tmp_path):
    config = default_config()
    config["root"] = {"path": "/somewhere/else"}
    with pytest.raises(BundleError) as info:
        Bundle.create(tmp_path / "b", spec=config)
    assert info.value.where == "root.path"
    Bundle.create(tmp_path / "b", spec=config, rootfs=None)   # allowed: the rootfs is the user's business


def test_root_path_dot_is_the_bundle_itself(tmp_path):
    config = default_config()
    config["root"] = {"path": "."}
    bundle = Bundle.create(tmp_path / "b", spec=config, rootfs=None)
    assert bundle.rootfs_path == tmp_path / "b"


def test_bundle_of_a_missing_directory(tmp_path):
    with pytest.raises(BundleError) as info:
        Bundle(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


def test_load_reports_bad_configs_but_bundle_does_not(tmp_path):
    (tmp_path / "config.json").write_text('{"ociVersion": 5}')
    bundle = Bundle(tmp_path)            # fine: validate() describes what is wrong
    assert "ociVersion" in [p.path for p in bundle.validate()]
    with pytest.raises(ConfigError):
        Bundle.load(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(BundleError) as info:
        Bundle.load(tmp_path)
    assert "config.json" in str(info.value)


def test_save_writes_the_edited_spec(busybox_bundle):
    bundle = Bundle.load(busybox_bundle)
    bundle.spec.hostname = "edited"
    bundle.save()
    assert json.loads((busybox_bundle / "config.json").read_text())["hostname"] == "edited"
    assert Bundle(busybox_bundle).spec.hostname == "edited"


def test_bundle_is_path_like(busybox_bundle):
    assert os.fspath(Bundle(busybox_bundle)) == str(busybox_bundle)
    assert Bundle(busybox_bundle) == Bundle(str(busybox_bundle))


def test_reprs_never_raise_even_for_a_broken_bundle(tmp_path, busybox_bundle):
    from IPython.lib.pretty import pretty

    good = Bundle(busybox_bundle)
    assert str(busybox_bundle) in good._repr_html_()
    assert str(busybox_bundle) in pretty(good)
    broken = Bundle(tmp_path)            # no config.json at all
    assert str(tmp_path) in broken._repr_html_()
    assert str(tmp_path) in pretty(broken)
    assert "config.json" in str(broken)


def test_create_again_with_overwrite_replaces_the_bundle(tmp_path):
    """A notebook's quick-start cell run twice: overwrite=True replaces the old bundle."""
    path = tmp_path / "demo-bundle"
    Bundle.create(path, rootfs=None)
    (path / "rootfs" / "old-file").write_text("from the first run")
    with pytest.raises(BundleError, match="not empty"):
        Bundle.create(path, rootfs=None)  # the default stays: never silently replace
    bundle = Bundle.create(path, rootfs=None, overwrite=True)
    assert bundle.config_path.is_file() and list((path / "rootfs").iterdir()) == []
    assert Bundle.create(tmp_path / "new", rootfs=None, overwrite=True).config_path.is_file()


def test_overwrite_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    path = tmp_path / "b"
    Bundle.create(path, rootfs=None)
    (path / "rootfs" / "escape").symlink_to(outside)  # a link inside the old bundle
    Bundle.create(path, rootfs=None, overwrite=True)
    assert (outside / "keep").read_text() == "precious"
    other = Bundle.create(tmp_path / "other", rootfs=None)
    link = tmp_path / "link"
    link.symlink_to(other.path)  # the bundle path itself is a link: the link goes, not its target
    Bundle.create(link, rootfs=None, overwrite=True)
    assert not link.is_symlink() and (link / "config.json").is_file()
    assert (other.path / "config.json").is_file() and (other.path / "rootfs").is_dir()


def test_overwrite_refuses_what_is_not_a_bundle(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.create(home, rootfs=None, overwrite=True)
    assert (home / "notes.txt").read_text() == "mine"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.create(a_file, rootfs=None, overwrite=True)
    assert a_file.read_text() == "x"
