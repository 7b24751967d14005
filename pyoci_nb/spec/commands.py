"""``pyoci spec`` and ``pyoci validate``.

``spec_command`` is on the fast path and uses only the standard library (``spec.defaults``):
it writes the config ``runc spec`` writes, tab-indented like runc, and refuses to overwrite an
existing config.json as runc does.  ``validate_command`` prints every problem of a config file
or a bundle with its JSON path and exits 1 when there is any.
"""

from __future__ import annotations

import json
import os
import sys

from pyoci_nb.cliparse import Arguments
from pyoci_nb.errors import BundleError


def spec_command(args: Arguments) -> int:
    """``pyoci spec [--rootless] [--bundle DIR]``: write ``DIR/config.json`` (runc's default)."""
    from pyoci_nb.spec.defaults import config_json, default_config

    bundle = args.bundle or "."
    if not os.path.isdir(bundle):
        raise BundleError(f"bundle directory {bundle} does not exist", where=bundle,
                          why="pyoci spec writes config.json into an existing directory",
                          hint=f"create it first (mkdir -p {bundle})")
    target = os.path.join(bundle, "config.json")
    text = config_json(default_config(rootless=args.rootless))
    try:
        # O_EXCL: never overwrite, even if config.json appears between a check and the write.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise BundleError("File config.json exists. Remove it first", where=target,
                          why="pyoci spec never overwrites an existing config.json (like runc)",
                          hint="remove it, or pass --bundle with another directory") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


def validate_command(args: Arguments) -> int:
    """``pyoci validate [--bundle DIR | FILE] [--for-start] [--format text|json]``."""
    if args.file is not None and args.bundle is not None:
        raise BundleError("give either --bundle or a FILE, not both", where="pyoci validate",
                          hint="pyoci validate --bundle DIR, or pyoci validate path/to/config.json")
    if args.file is not None:
        source = args.file
        problems = _validate_file(args.file, args.for_start)
    else:
        source = args.bundle or "."
        from pyoci_nb.bundle import Bundle

        problems = list(Bundle(source).validate(for_start=args.for_start))
    if args.format == "json":
        json.dump({"source": source, "ok": not problems,
                   "problems": [p.to_dict() for p in problems]}, sys.stdout, indent=2, default=repr)
        sys.stdout.write("\n")
    else:
        from pyoci_nb.spec.problems import ValidationReport

        sys.stdout.write(str(ValidationReport(problems, source=source)) + "\n")
    return 1 if problems else 0


def _validate_file(path: str, for_start: bool) -> list:
    from pyoci_nb.spec.problems import Problem
    from pyoci_nb.spec.validation import validate_config

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise BundleError(f"cannot read {path}", where=path, why=exc.strerror or str(exc),
                          hint="give the path of a config.json") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Problem(f"{path}:{exc.lineno}:{exc.colno}", f"not valid JSON: {exc.msg}", None)]
    return validate_config(config, for_start=for_start)
