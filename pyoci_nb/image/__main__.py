"""``python -m pyoci_nb.image`` (``pyoci-image``): pull, list, inspect, unpack, rm, prune.

The ``pyoci`` runtime keeps exactly runc's commands; images have their own command line.
Errors are printed as one line (what, where, why, what to do) with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyoci-image", description="OCI images: pull from registries, "
                                     "keep them in a local store, unpack them to runtime bundles")
    parser.add_argument("--store", default=None, help="the image store (default: $PYOCI_IMAGE_STORE, "
                        "/var/lib/pyoci-nb/images as root, $XDG_DATA_HOME/pyoci-nb/images otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)
    pull = sub.add_parser("pull", help="pull an image from a registry, or from oci:DIR:TAG, "
                          "oci-archive:FILE:TAG, docker-archive:FILE:REPO:TAG (progress bars on a terminal)")
    pull.add_argument("reference")
    pull.add_argument("--insecure", action="store_true", help="allow plain HTTP to a non-loopback registry")
    pull.add_argument("--platform", default=None, metavar="OS/ARCH[/VARIANT]", help="e.g. linux/arm64/v8")
    pull.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    sub.add_parser("list", help="the images in the store")
    inspect = sub.add_parser("inspect", help="an image's manifest, config and layers")
    inspect.add_argument("reference")
    inspect.add_argument("--json", action="store_true", help="the manifest and config as JSON")
    unpack = sub.add_parser("unpack", help="an OCI bundle from an image (as umoci unpack)")
    unpack.add_argument("reference")
    unpack.add_argument("bundle")
    unpack.add_argument("--flat", action="store_true", help="a flat rootfs/ instead of an overlay snapshot")
    remove = sub.add_parser("rm", help="forget an image (its blobs go with the next prune)")
    remove.add_argument("reference")
    sub.add_parser("prune", help="remove blobs and unpacked layers no image uses")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pyoci_nb.errors import PyociError
    from pyoci_nb.image import Image, ImageError, ImageStore, parse_source, pull, unpack_bundle

    store = ImageStore(args.store)
    try:
        if args.command == "pull":
            platform = None
            if args.platform:
                parts = args.platform.split("/")
                if len(parts) not in (2, 3) or not all(parts):
                    raise ImageError(f"invalid platform {args.platform!r}", where="--platform",
                                     hint="e.g. linux/amd64 or linux/arm64/v8")
                platform = dict(zip(("os", "architecture", "variant"), parts, strict=False))
            image = pull(args.reference, store=store, insecure=args.insecure, platform=platform,
                         progress=not args.quiet)
            print(image.text())
        elif args.command == "list":
            for name, record in sorted(store.references().items()):
                print(f"{name}\t{record['manifest']}")
        elif args.command == "inspect":
            image = Image.load(parse_source(args.reference), store)
            if args.json:
                print(json.dumps({"manifest": image.manifest, "config": image.config}, indent=2))
            else:
                print(image.text())
        elif args.command == "unpack":
            image = Image.load(parse_source(args.reference), store)
            print(unpack_bundle(image, args.bundle, overlay=False if args.flat else None))
        elif args.command == "rm":
            ref = parse_source(args.reference)
            if not store.untag(ref.key):
                raise ImageError("image not in the local store", where=ref.key, hint="see `pyoci-image list`")
        elif args.command == "prune":
            for digest in store.prune():
                print(digest)
    except PyociError as exc:
        print(f"pyoci-image: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pyoci-image: interrupted (a pull resumes where it stopped)", file=sys.stderr)
        return 130
    except Exception as exc:        # a bug: one line saying what to report, not a traceback
        print(f"pyoci-image: internal error: {type(exc).__name__}: {exc} (please report it with the "
              "command line)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
