"""Images side by side, in one run, on one loopback registry (Debian's docker-registry):

* **unpack** of the same image into a flat rootfs: ``Bundle.from_image(..., overlay=False)`` (blobs
  already in the store) vs ``umoci unpack`` (from an OCI layout of the same blobs);
* **unpack into the store** (layers as shared overlay lower dirs, what a first ``--image`` cell
  does) vs ``umoci unpack`` again;
* **pull** into an empty store: ``pyoci_nb.pull`` vs ``skopeo copy docker://... oci:DIR``;
* **cold run**: an empty store, pull + overlay bundle + ``pyoci_nb.run(bundle, ["true"])`` (what
  ``%%container --image`` does, without the kernel) vs ``podman --runtime runc run --rm`` of the
  same image from the same registry with an empty podman storage.

The image: the busybox rootfs plus a layer holding a copy of this Python's standard library
(thousands of files).  Prints median/min/max (ms) and ratios; asserts nothing.  Needs root.

    python bench/images.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "image"))
sys.path.insert(0, str(REPO))

from registry_harness import OciLayout, Registry, tar_of_directory  # noqa: E402

import pyoci_nb  # noqa: E402
from pyoci_nb.image import ImageStore, pull  # noqa: E402
from pyoci_nb.rootfs.tree import remove_tree  # noqa: E402


def stdlib_layer() -> bytes:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(stdlib, arcname=f"usr/lib/{stdlib.name}",
                filter=lambda i: None if "__pycache__" in i.name or "site-packages" in i.name else i)
    return buf.getvalue()


def timed(label: str, runs: int, setup, action, cleanup) -> list[float]:
    times = []
    for _ in range(runs + 1):                       # the first run warms caches and is not counted
        state = setup()
        start = time.perf_counter()
        action(state)
        times.append((time.perf_counter() - start) * 1000)
        cleanup(state)
    times = times[1:]
    print(f"  {label:<52} median {statistics.median(times):8.1f} ms  "
          f"(min {min(times):.1f}, max {max(times):.1f})", flush=True)
    return times


def ratio(ours, theirs, what) -> None:
    r = statistics.median(ours) / statistics.median(theirs)
    print(f"  -> {what}: {r:.2f}x ({'ahead' if r < 1 else 'behind'})\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-images-"))
    registry = None
    try:
        busybox = pyoci_nb.rootfs.busybox(work / "busybox")
        layout = OciLayout(work / "layout")
        layers = [tar_of_directory(busybox), stdlib_layer()]
        layout.tag("v1", layout.image(layers, config={"Cmd": ["sh"]}))
        print(f"image: 2 layers, {sum(map(len, layers)) >> 20} MiB uncompressed, "
              f"{sum(1 for _ in tarfile.open(fileobj=io.BytesIO(layers[1])))} files in the big one", flush=True)
        registry = Registry(work / "registry")
        registry.push(layout.path, "v1", "bench/img:v1")
        ref = f"{registry.host}/bench/img:v1"
        n = args.runs
        counter = iter(range(10**6))

        def fresh(name):
            return lambda: work / f"{name}-{next(counter)}"

        print("unpack (flat rootfs)")
        store = ImageStore(work / "warm-store")
        image = pull(ref, store=store, progress=False)
        ours = timed("pyoci_nb Bundle.from_image(overlay=False)", n, fresh("flat"),
                     lambda d: pyoci_nb.Bundle.from_image(image, d, overlay=False), remove_tree)
        umoci = timed("umoci unpack", n, fresh("umoci"),
                      lambda d: subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:v1", str(d)],
                                               check=True, capture_output=True), remove_tree)
        ratio(ours, umoci, "flat unpack vs umoci unpack")

        print("unpack into the store (shared overlay lower dirs) + overlay bundle")

        def layers_unpacked(d):
            for layer_dir in image.layer_dirs():
                pass
            pyoci_nb.Bundle.from_image(image, d, overlay=True)

        def drop_layers(d):
            remove_tree(d)
            remove_tree(store.root / "layers")
            (store.root / "layers" / "sha256").mkdir(parents=True)

        ours = timed("pyoci_nb layers into the store + snapshot bundle", n, fresh("ov"), layers_unpacked, drop_layers)
        ratio(ours, umoci, "store unpack vs umoci unpack")

        print("pull into an empty store")
        ours = timed("pyoci_nb.pull", n, fresh("store"),
                     lambda d: pull(ref, store=ImageStore(d), progress=False), remove_tree)
        skopeo = timed("skopeo copy docker:// oci:", n, fresh("skopeo"),
                       lambda d: subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                                 f"docker://{ref}", f"oci:{d}:v1"], check=True,
                                                capture_output=True), remove_tree)
        ratio(ours, skopeo, "pull vs skopeo copy")

        print("cold run of the image (empty store / empty podman storage)")
        state_root = work / "state"

        def cold(d):
            img = pull(ref, store=ImageStore(d / "store"), progress=False)
            bundle = pyoci_nb.Bundle.from_image(img, d / "bundle")
            result = pyoci_nb.run(bundle, ["true"], root=str(state_root))
            assert result.returncode == 0

        ours = timed("pull + overlay bundle + pyoci_nb.run(['true'])", n, fresh("cold"), cold, remove_tree)
        if shutil.which("podman"):
            def podman(d):
                d.mkdir()
                subprocess.run(["podman", "--root", str(d / "root"), "--runroot", str(d / "run"),
                                "--runtime", "runc", "--storage-driver", "overlay", "run", "--rm",
                                "--tls-verify=false", "--net", "none", "--ulimit", "nofile=1024:1024",
                                "--ulimit", "nproc=1024:1024", ref, "true"], check=True, capture_output=True)

            def podman_cleanup(d):
                subprocess.run(["podman", "--root", str(d / "root"), "--runroot", str(d / "run"),
                                "--storage-driver", "overlay", "system", "reset", "-f"], capture_output=True)
                subprocess.run(["umount", "-l", str(d / "root" / "overlay")], capture_output=True)
                remove_tree(d)

            theirs = timed("podman --runtime runc run --rm (cold)", n, fresh("podman"), podman, podman_cleanup)
            ratio(ours, theirs, "cold run vs podman")
        else:
            print("  podman not installed: no comparison")
    finally:
        if registry is not None:
            registry.stop()
        with open("/proc/self/mountinfo") as f:      # podman's storage mounts, if a run failed
            for point in sorted((line.split()[4] for line in f if str(work) in line), reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True)
        remove_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
