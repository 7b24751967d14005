"""OCI bundles from images, as ``umoci unpack`` makes them (image-spec ``conversion.md``).

The runtime config is the default one (``runc spec``) with the image config's ``config`` applied:

* ``process.args`` = ``Entrypoint`` + ``Cmd`` (either may be empty);
* ``process.env`` = the default ``PATH`` and ``TERM`` overridden and extended by ``Env``;
* ``process.cwd`` = ``WorkingDir`` (``/`` when empty);
* ``process.user`` = ``User`` (``uid``, ``uid:gid``, ``name`` or ``name:group``; names looked up
  in the image's ``/etc/passwd`` and ``/etc/group``, as conversion.md says);
* annotations: ``Labels`` as they are, plus ``org.opencontainers.image.os``, ``.architecture``,
  ``.author``, ``.created``, ``.exposedPorts`` (comma-separated ``ExposedPorts`` keys),
  ``.stopSignal`` and the volumes (``org.opencontainers.image.volumes``, not mounted).

The root filesystem is either *flat* (every layer applied in order into ``rootfs/``, whiteouts
removing what they name) or an *overlay* snapshot (``snapshot/``) whose lower directories are the
store's shared, once-unpacked layers: nothing is copied and removing the bundle leaves the store.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from pyoci_nb.image.image import Image
from pyoci_nb.image.reference import ImageError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def runtime_config(image: Image, base: dict, layer_dirs_top_first: list) -> dict:
    """``base`` (a runtime config) with the image's process defaults and annotations applied."""
    config = copy.deepcopy(base)
    c = image.process_config
    process = config.setdefault("process", {})
    args = list(c.get("Entrypoint") or []) + list(c.get("Cmd") or [])
    if args:
        process["args"] = args
    env = {item.partition("=")[0]: item for item in process.get("env") or [DEFAULT_PATH]}
    env.update((item.partition("=")[0], item) for item in c.get("Env") or [])   # the image's win, as in umoci
    process["env"] = list(env.values())
    process["cwd"] = c.get("WorkingDir") or "/"
    if c.get("User"):
        process["user"] = resolve_user(c["User"], layer_dirs_top_first, str(image.reference))
    annotations = dict(config.get("annotations") or {})
    annotations.update({str(k): str(v) for k, v in (c.get("Labels") or {}).items()})
    for key, value in (("os", image.config.get("os")), ("architecture", image.config.get("architecture")),
                       ("author", image.config.get("author")), ("created", image.config.get("created")),
                       ("exposedPorts", ",".join(sorted(c.get("ExposedPorts") or {}))),
                       ("stopSignal", c.get("StopSignal")),
                       ("volumes", ",".join(sorted(c.get("Volumes") or {})))):
        if value:
            annotations[f"org.opencontainers.image.{key}"] = str(value)
    annotations["org.opencontainers.image.ref.name"] = str(image.reference)
    config["annotations"] = annotations
    return config


def resolve_user(text: str, layer_dirs_top_first: list, where: str) -> dict:
    """``User`` -> ``{"uid", "gid"}``: numbers as they are, names from the image's files."""
    user, _, group = text.partition(":")

    def lookup(path: str, name: str, field: int) -> tuple[int, int] | None:
        content = read_image_file(layer_dirs_top_first, path)
        for line in (content or b"").decode(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[0] == name:
                try:
                    return int(fields[2]), int(fields[3]) if field else 0
                except ValueError:
                    return None
        return None

    if user.isdigit():
        uid, gid = int(user), 0       # conversion.md: a uid alone runs with group 0 unless the uid is listed
        passwd = read_image_file(layer_dirs_top_first, "/etc/passwd") or b""
        for line in passwd.decode(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[2] == user and fields[3].isdigit():
                gid = int(fields[3])
                break
    else:
        entry = lookup("/etc/passwd", user, 1)
        if entry is None:
            raise ImageError(f"user {user!r} is not in the image's /etc/passwd", where=f"{where}: config.User",
                             why="conversion.md: a user name is looked up in the image's /etc/passwd",
                             hint="use a numeric User, or an image that defines the user")
        uid, gid = entry
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = lookup("/etc/group", group, 0)
            if entry is None:
                raise ImageError(f"group {group!r} is not in the image's /etc/group", where=f"{where}: config.User")
            gid = entry[0]
    return {"uid": uid, "gid": gid}


def read_image_file(layer_dirs_top_first: list, path: str, limit: int = 1 << 20) -> bytes | None:
    """The content of ``path`` as the merged image shows it: the topmost layer that has it
    (resolved inside each layer through descriptors; a whiteout hides it)."""
    from pyoci_nb.rootfs.tree import resolve_in_root

    for layer in layer_dirs_top_first:
        host = resolve_in_root(layer, path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not (st.st_mode & 0o170000 == 0o100000):
                return None          # a whiteout (0/0 device) or anything else: not a readable file
            return os.read(fd, limit)
        finally:
            os.close(fd)
    return None


def image_root(image: Image, bundle: Path, base: dict, overlay: bool) -> tuple[dict, object, str]:
    """``(config, snapshot or None, root path)`` for a container of ``image`` in ``bundle``:
    an overlay ``snapshot/`` over the store's shared layers (``overlay``), or a flat ``rootfs/``
    with the layers applied in order.  ``config`` is ``base`` with the image's defaults and the
    root (the overlay as ``mounts[0]``)."""
    from pyoci_nb.rootfs.overlay import Snapshot
    from pyoci_nb.rootfs.safetar import apply_layer

    if overlay:
        dirs = list(reversed(image.layer_dirs()))
        snapshot = Snapshot.create(dirs, bundle / "snapshot")
        config = snapshot.apply_to(runtime_config(image, base, dirs))
        config["root"]["readonly"] = False     # as umoci: the container's changes go to the upper dir
        return config, snapshot, str(snapshot.rootfs)
    rootfs = bundle / "rootfs"
    for layer in image.layers:
        with image.store.uncompressed(layer.digest, layer.media_type, layer.diff_id) as tar:
            apply_layer(tar, rootfs, error=ImageError)
    config = runtime_config(image, base, [rootfs])
    config["root"] = {"path": str(rootfs), "readonly": False}
    return config, None, str(rootfs)


def overlay_usable(rootless: bool) -> bool:
    """Whether containers of images get overlay snapshots here: as root, where the kernel
    mounts overlays (the store's layers carry root-made whiteouts and opaque attributes)."""
    from pyoci_nb.rootfs.overlay import overlay_support

    return os.geteuid() == 0 and overlay_support(rootless=rootless) is None


def unpack_bundle(image: Image, dest: str | os.PathLike, *, overlay: bool | None = None,
                  rootless: bool | None = None, terminal: bool = False) -> Path:
    """Write the bundle of ``image`` into ``dest`` (new or empty, made 0700): ``config.json``
    and either a flat ``rootfs/`` or an overlay ``snapshot/`` (``overlay=None``: an overlay where
    ``overlay_usable``)."""
    from pyoci_nb.rootfs.tree import fresh_directory
    from pyoci_nb.spec.defaults import default_config

    rootless = os.geteuid() != 0 if rootless is None else rootless
    base = default_config(rootless=rootless)
    base["process"]["terminal"] = terminal
    with fresh_directory(dest, ImageError) as bundle:
        os.chmod(bundle, 0o700)
        config, _snapshot, _root = image_root(image, bundle, base,
                                              overlay_usable(rootless) if overlay is None else overlay)
        if not _snapshot:
            config["root"]["path"] = "rootfs"
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def cell_root(reference: str, bundle: Path, rootless: bool) -> tuple[dict, object, str]:
    """For ``%%container --image``: ``(base config, snapshot or None, root path)`` of a fresh
    container of ``reference`` in the magic's ``bundle`` directory -- the image pulled on first
    use (with progress bars; later cells reuse the store)."""
    from pyoci_nb.image.image import image_for
    from pyoci_nb.spec.defaults import default_config

    image = image_for(reference)
    return image_root(image, bundle, default_config(rootless=rootless), overlay_usable(rootless))
