"""``BundleBrowser``: a bundle's root filesystem (one directory at a time, never leaving it),
its config.json and its validation report."""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from pyoci_nb.bundle import Bundle
from pyoci_nb.notebook.reprs import html_repr, wrap
from pyoci_nb.notebook.reprs.blocks import header
from pyoci_nb.notebook.reprs.common import plural
from pyoci_nb.notebook.reprs.validation import as_report
from pyoci_nb.notebook.widgets.common import error_html


class BundleBrowser(widgets.VBox):
    """A bundle: its root filesystem (one directory listed at a time, at most
    ``max_entries`` names; symlinks shown with their target and never followed, so the
    browser never leaves the rootfs), its config.json and its validation report."""

    max_entries = 500

    def __init__(self, bundle: Any, **kwargs):
        if isinstance(bundle, (str, os.PathLike)):
            bundle = Bundle(bundle)
        self.bundle = bundle
        self.rootfs: Path | None = None
        self.current = Path(".")
        self.location = widgets.HTML()
        self.listing = widgets.Select(options=[], rows=16, layout=widgets.Layout(width="520px"))
        self.info = widgets.HTML()
        self.up_button = widgets.Button(description="up", icon="arrow-up", layout=widgets.Layout(width="70px"))
        self.up_button.on_click(lambda _b: self.open_directory(self.current.parent))
        self.listing.observe(self._selected, names="value")
        self.config_view = widgets.HTML()
        self.validation_view = widgets.HTML()
        self.header = widgets.HTML()
        refresh = widgets.Button(description="refresh", icon="refresh", layout=widgets.Layout(width="100px"))
        refresh.on_click(lambda _b: self.refresh())
        rootfs_tab = widgets.VBox([widgets.HBox([self.up_button, self.location]), self.listing, self.info])
        self.tabs = widgets.Tab(children=[rootfs_tab, self.config_view, self.validation_view],
                                titles=["rootfs", "config.json", "validation"])
        super().__init__(children=[widgets.HBox([self.header, refresh]), self.tabs], **kwargs)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the config, the validation and the current directory."""
        try:
            self.config_view.value = html_repr(self.bundle.spec)
        except Exception as exc:
            self.config_view.value = error_html(f"config.json unreadable: {exc}")
        try:
            report = as_report(self.bundle.validate(), "config.json")
            self.validation_view.value = html_repr(report)
            problems = len(getattr(report, "problems", []) or [])
            verdict = "valid" if not problems else plural(problems, "problem")
        except Exception as exc:
            self.validation_view.value = error_html(f"validation failed: {exc}")
            verdict = "not validated"
        self.header.value = wrap(header("Bundle", [("", getattr(self.bundle, "path", "")), ("config", verdict)]))
        try:
            self.rootfs = Path(self.bundle.rootfs_path)
        except Exception as exc:
            self.rootfs = None
            self.listing.options = []
            self.location.value = ""
            self.info.value = error_html(f"no root filesystem: {exc}")
            return
        self.open_directory(self.current)

    def open_directory(self, relative: Path | str) -> None:
        """List directory ``relative`` (to the rootfs); ``..`` never goes above the rootfs."""
        parts = [p for p in Path(relative).parts if p not in ("", ".", "/")]
        clean: list[str] = []
        for part in parts:
            if part == "..":
                if clean:
                    clean.pop()
            else:
                clean.append(part)
        target = Path(*clean) if clean else Path(".")
        if self.rootfs is None:
            return
        directory = self.rootfs.joinpath(*clean) if clean else self.rootfs
        try:
            if directory.is_symlink() or not directory.is_dir():
                raise NotADirectoryError(f"{target} is not a directory")
            entries = list_directory(directory, self.max_entries)
        except OSError as exc:
            self.info.value = error_html(str(exc))
            return
        self.current = target
        shown, total = entries
        options = [(label, name) for label, name in shown]
        self._listing_update = True
        try:
            self.listing.options = options
            self.listing.value = None
        finally:
            self._listing_update = False
        more = f" (first {len(shown)} of {total})" if total > len(shown) else f" ({total} entries)"
        self.location.value = f"<code>/{html.escape(str(target)) if clean else ''}</code>{html.escape(more)}"
        self.info.value = ""
        self.up_button.disabled = not clean

    def _selected(self, change) -> None:
        if getattr(self, "_listing_update", False) or change["new"] is None:
            return
        name = change["new"]
        path = self.rootfs / self.current / name
        try:
            st = path.lstat()
        except OSError as exc:
            self.info.value = error_html(str(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            self.open_directory(self.current / name)
            return
        self.info.value = _file_info_html(path, st, "/" + str(self.current / name).lstrip("./"))


def list_directory(directory: Path, limit: int) -> tuple[list[tuple[str, str]], int]:
    """``([(label, name)], total)``: directories first (``name/``), then files; symlinks as
    ``name -> target``; at most ``limit`` entries."""
    dirs, others = [], []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if entry.is_symlink():
                    others.append((f"{entry.name} -> {os.readlink(entry.path)}", entry.name))
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append((f"{entry.name}/", entry.name))
                else:
                    others.append((entry.name, entry.name))
            except OSError:
                others.append((f"{entry.name} (unreadable)", entry.name))
    everything = sorted(dirs) + sorted(others)
    return everything[:limit], len(everything)


def _file_info_html(path: Path, st: os.stat_result, shown: str) -> str:
    kind = ("symlink" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
            else "character device" if stat.S_ISCHR(st.st_mode) else "block device" if stat.S_ISBLK(st.st_mode)
            else "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "other")
    facts = f"{kind}, {stat.filemode(st.st_mode)}, uid {st.st_uid} gid {st.st_gid}, {st.st_size} bytes"
    if stat.S_ISLNK(st.st_mode):
        facts += f", -> {os.readlink(path)}"
    return f"<div style='font-size:12px'><code>{html.escape(shown)}</code>: {html.escape(facts)}</div>"
