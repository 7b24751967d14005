"""An unprivileged user pulls an image from an OCI layout into its own store (under
``$XDG_DATA_HOME``), unpacks it to a flat bundle as itself and runs it with ``pyoci --rootless``
defaults.  Debian's python3 without httpx: local sources need no HTTP client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "image"))

from registry_harness import OciLayout, tar_bytes, tar_of_directory  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"

_PULL_AND_UNPACK = """
import json, sys
from pyoci_nb.image import ImageStore, pull, unpack_bundle
image = pull("oci:" + sys.argv[1] + ":v1", progress=False)
print(ImageStore().root)
bundle = unpack_bundle(image, sys.argv[2], overlay=False)
config = json.load(open(bundle / "config.json"))
print(json.dumps(config["process"]["args"]), config["process"]["user"], bool(config.get("linux", {}).get("uidMappings")))
"""


def test_unprivileged_user_pulls_unpacks_and_runs_an_image(session):
    layout_dir = session.home / "layout"
    layout = OciLayout(layout_dir)
    top = tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"rootless image\n"),
                     ("etc/.wh.hostname", "file", b""),
                     ("srv", "dir", None, {"uid": 1000, "gid": 1000}),
                     ("srv/tool", "file", b"#!/bin/sh\n", {"mode": 0o4755})])
    layout.tag("v1", layout.image([tar_of_directory(session.bundle / "rootfs"), top],
                                  config={"Env": ["FROM=layout"], "Cmd": ["sh", "-c", "echo $FROM; id -u; cat /etc/motd"]}))
    for path in [layout_dir, *layout_dir.rglob("*")]:
        os.chown(path, session.user.uid, session.user.gid)
    bundle = session.home / "img-bundle"
    made = session.as_user(SYSTEM_PYTHON, "-c", _PULL_AND_UNPACK, layout_dir, bundle,
                           XDG_DATA_HOME=str(session.home / "data"))
    assert made.returncode == 0, made.stderr
    store_line, config_line = made.stdout.splitlines()
    assert store_line == str(session.home / "data" / "pyoci-nb" / "images")
    assert config_line == '["sh", "-c", "echo $FROM; id -u; cat /etc/motd"] {\'uid\': 0, \'gid\': 0} True'
    store = Path(store_line)
    assert os.stat(store).st_uid == session.user.uid and os.stat(store).st_mode & 0o777 == 0o700
    rootfs = bundle / "rootfs"
    assert not (rootfs / "etc" / "hostname").exists()
    assert os.stat(rootfs / "srv" / "tool").st_uid == session.user.uid      # owners: the user's own
    ran = session.as_user(SYSTEM_PYTHON, "-m", "pyoci_nb", "run", "rl-image", cwd=bundle)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "layout\n0\nrootless image\n"
    assert json.loads((bundle / "config.json").read_text())["process"]["env"][-1] == "FROM=layout"
