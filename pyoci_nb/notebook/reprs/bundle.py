"""A ``Bundle``: its path, the root filesystem's top level, the config and its validation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyoci_nb.bundle import Bundle
from pyoci_nb.notebook.reprs.blocks import chips, header, section
from pyoci_nb.notebook.reprs.common import MAX_TEXT_LINES, esc, exception_text, plural, type_name
from pyoci_nb.notebook.reprs.dispatch import html_body, register, text_body
from pyoci_nb.notebook.reprs.tree_text import inline_list
from pyoci_nb.notebook.reprs.validation import as_report, report_html, report_text


def _rootfs_of(bundle: Any) -> Path:
    """The bundle's root filesystem (``Bundle.rootfs_path``: root.path resolved against the
    bundle); raises what it raises (e.g. BundleError when root.path is not set)."""
    return Path(bundle.rootfs_path)


def rootfs_entries(rootfs: Path) -> list[str]:
    """Sorted top-level names of a root filesystem, directories with a trailing ``/``."""
    names = []
    with os.scandir(rootfs) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            names.append(entry.name + ("/" if is_dir else ""))
    return sorted(names)


def bundle_html(bundle: Any) -> str:
    """A bundle: its path, the root filesystem's top level, the config and its validation."""
    path = getattr(bundle, "path", None)
    parts = []
    rootfs = ""
    try:
        rootfs = _rootfs_of(bundle)
        entries = rootfs_entries(rootfs)
        rootfs_body = chips(entries)
        rootfs_count = str(len(entries))
    except Exception as exc:
        rootfs_body = f'<div class="pyoci-failed">{esc(exception_text(exc))}</div>'
        rootfs_count = "unreadable"
    try:
        report = as_report(bundle.validate(), "config.json")
        problems = list(getattr(report, "problems", []) or [])
        verdict = "valid" if not problems else plural(len(problems), "problem")
        report_body = report_html(report)
    except Exception as exc:
        verdict, report_body = "not validated", f'<div class="pyoci-failed">{esc(exception_text(exc))}</div>'
    try:
        spec = bundle.spec
        spec_body = html_body(spec) if spec is not None else '<span class="pyoci-null">(no config)</span>'
    except Exception as exc:
        spec_body = f'<div class="pyoci-failed">config.json unreadable: {esc(exception_text(exc))}</div>'
    parts.append(header(type_name(bundle), [("", path), ("config", verdict)],
                         hover="an OCI bundle: config.json and the root filesystem (runtime-spec bundle.md)"))
    parts.append(section("rootfs", rootfs_body, count=rootfs_count, brief=str(rootfs or ""),
                          explanation="the container's root filesystem (top level)", open_=True))
    parts.append(section("config.json", spec_body, explanation="the container's configuration", open_=False))
    parts.append(section("validation", report_body, brief=verdict, open_=verdict != "valid"))
    return "".join(parts)


def bundle_text(bundle: Any) -> str:
    """A bundle as text: path, rootfs top level, validation, then the config."""
    path = getattr(bundle, "path", None)
    lines = [f"{type_name(bundle)}: {path}"]
    try:
        entries = rootfs_entries(_rootfs_of(bundle))
        lines.append(f"  rootfs ({len(entries)}): {inline_list(entries, 12)}")
    except Exception as exc:
        lines.append(f"  rootfs: unreadable: {exception_text(exc)}")
    try:
        report = as_report(bundle.validate(), "config.json")
        lines.extend("  " + line for line in report_text(report).splitlines())
    except Exception as exc:
        lines.append(f"  validation failed: {exception_text(exc)}")
    try:
        spec = bundle.spec
        lines.extend("  " + line for line in text_body(spec).splitlines()[:MAX_TEXT_LINES // 2])
    except Exception as exc:
        lines.append(f"  config.json unreadable: {exception_text(exc)}")
    return "\n".join(lines)


register(Bundle, html=bundle_html, text=bundle_text)
