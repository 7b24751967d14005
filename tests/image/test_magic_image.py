"""``%%container --image`` in a real Jupyter kernel: the image is pulled from the loopback registry
on first use, the cell runs the image's content with its Env on an overlay of the store's shared
layers, and nothing but the store is left once the container is gone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "notebook"))
pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

from kernel_harness import bundle_entries, clean_after, kernel, mounts_under, state_entries  # noqa: E402,F401
from registry_harness import tar_bytes  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_cell_runs_the_images_content_with_its_env(kernel, clean_after, registry, layout, busybox_layer, tmp_path):
    store = tmp_path / "image-store"
    top = tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"motd of the image\n"),
                     ("app", "dir", None), ("app/data", "file", b"app data\n")])
    layout.tag("v1", layout.image([busybox_layer, top], config={"Env": ["PATH=/bin", "GREETING=hello-from-image"],
                                                                "WorkingDir": "/app"}))
    registry.push(layout.path, "v1", "demo/nb:v1")
    ref = f"{registry.host}/demo/nb:v1"
    setup = kernel.execute(f"import os; os.environ['PYOCI_IMAGE_STORE'] = {str(store)!r}")
    assert setup.ok
    try:
        run = kernel.execute(f"%%container --image {ref}\necho $GREETING; pwd; cat /etc/motd data; "
                             "echo changed > /etc/motd; cat /etc/motd\n")
        assert run.ok, (run.error, run.stderr)
        assert run.stdout.splitlines() == ["hello-from-image", "/app", "motd of the image", "app data", "changed"]
        assert (store / "refs.json").is_file() and len(list((store / "layers" / "sha256").iterdir())) == 2
        # the change went to the container's upper dir, gone with it; the shared layers are intact
        motd = [p / "etc" / "motd" for p in (store / "layers" / "sha256").iterdir() if (p / "etc" / "motd").exists()]
        assert [p.read_text() for p in motd] == ["motd of the image\n"]
        assert bundle_entries(kernel.magic_root) == [] and state_entries(kernel.magic_root) == []
        assert mounts_under(store, everywhere=True) == []
        again = kernel.execute(f"%%container --image {ref} --env GREETING=override\necho $GREETING; cat /etc/motd\n")
        assert again.ok and again.stdout.splitlines() == ["override", "motd of the image"]
    finally:
        kernel.execute("os.environ.pop('PYOCI_IMAGE_STORE', None)")
        from pyoci_nb.rootfs.tree import remove_tree

        remove_tree(store)


def test_missing_image_is_a_clear_error_and_leaves_nothing(kernel, clean_after, registry, tmp_path):
    store = tmp_path / "image-store"
    kernel.execute(f"import os; os.environ['PYOCI_IMAGE_STORE'] = {str(store)!r}")
    try:
        run = kernel.execute(f"%%container --image {registry.host}/demo/none:1\necho never\n")
        assert run.error["ename"] == "ImageError"
        assert "manifest not found: HTTP 404" in run.error["evalue"] and "demo/none:1" in run.error["evalue"]
        assert "Traceback" not in run.stderr
        assert bundle_entries(kernel.magic_root) == [] and state_entries(kernel.magic_root) == []
    finally:
        kernel.execute("os.environ.pop('PYOCI_IMAGE_STORE', None)")


def test_named_container_of_an_image_keeps_its_files_across_cells(kernel, clean_after, registry, layout,
                                                                   busybox_layer, tmp_path):
    store = tmp_path / "image-store"
    layout.tag("v1", layout.image([busybox_layer], config={"Env": ["PATH=/bin", "ROLE=named"]}))
    registry.push(layout.path, "v1", "demo/named:v1")
    kernel.execute(f"import os; os.environ['PYOCI_IMAGE_STORE'] = {str(store)!r}")
    try:
        first = kernel.execute(f"%%container --name imgbox --image {registry.host}/demo/named:v1\n"
                               "echo $ROLE > /kept\n")
        assert first.ok, (first.error, first.stderr)
        second = kernel.execute("%%container --name imgbox\ncat /kept\n")
        assert second.ok and second.stdout == "named\n"
        listing = kernel.execute("%containers")
        assert f"{registry.host}/demo/named:v1" in str(listing.data) + listing.stdout
        assert kernel.execute("%container_rm imgbox").ok
        assert bundle_entries(kernel.magic_root) == [] and mounts_under(store, everywhere=True) == []
    finally:
        kernel.execute("os.environ.pop('PYOCI_IMAGE_STORE', None)")
