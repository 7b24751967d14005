"""``ContainerPanel``: a container's state, its processes (those of its cgroup, as ``pyoci ps``
lists them) and start / kill / delete / refresh buttons."""

from __future__ import annotations

import html
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from pyoci_nb.errors import PyociError
from pyoci_nb.notebook.reprs import html_repr, wrap
from pyoci_nb.notebook.reprs.blocks import column_heads, records_wrap
from pyoci_nb.notebook.widgets.common import error_html
from pyoci_nb.runtime.cgroups import manager_from_state


class ContainerPanel(widgets.VBox):
    """A container: its state (lifecycle and namespaces pictures), its processes (``ps``),
    and start / kill / delete / refresh buttons.  Errors of an action (e.g. start of a
    container that is not ``created``) are shown in the panel, not raised.  ``auto_refresh``
    re-reads the state every ``interval`` seconds from a background thread until unticked or
    ``close()``."""

    def __init__(self, container: Any, *, interval: float = 2.0, **kwargs):
        self.container = container
        self.interval = interval
        self.state_view = widgets.HTML()
        self.processes_view = widgets.HTML()
        self.message = widgets.HTML()
        self.signal = widgets.Dropdown(options=["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"],
                                       value="SIGTERM", layout=widgets.Layout(width="110px"))
        self.force = widgets.Checkbox(description="force", indent=False, layout=widgets.Layout(width="70px"),
                                      tooltip="delete --force: SIGKILL a running container first")
        self.buttons = {}
        for name, icon, action in (("start", "play", self.start), ("kill", "bolt", self.kill),
                                   ("delete", "trash", self.delete), ("refresh", "refresh", self.refresh)):
            button = widgets.Button(description=name, icon=icon, layout=widgets.Layout(width="100px"))
            button.on_click(lambda _b, action=action: action())
            self.buttons[name] = button
        self.auto_refresh = widgets.Checkbox(description="auto-refresh", indent=False,
                                             layout=widgets.Layout(width="120px"))
        self.auto_refresh.observe(self._auto_refresh_changed, names="value")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        toolbar = widgets.HBox([self.buttons["start"], self.signal, self.buttons["kill"], self.force,
                                self.buttons["delete"], self.buttons["refresh"], self.auto_refresh])
        super().__init__(children=[toolbar, self.message, self.state_view,
                                   widgets.HTML("<b>processes</b>"), self.processes_view], **kwargs)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def _act(self, what: str, action: Callable[[], Any]) -> bool:
        try:
            action()
        except (PyociError, OSError) as exc:
            self.message.value = error_html(f"{what} failed: {exc}")
            self.refresh(keep_message=True)
            return False
        self.message.value = f'<div style="font-size:12px">{html.escape(what)}: done</div>'
        self.refresh(keep_message=True)
        return True

    def start(self) -> bool:
        """``start``: run the user program of a ``created`` container."""
        return self._act("start", self.container.start)

    def kill(self, signal: str | int | None = None) -> bool:
        """``kill``: send the signal chosen in the dropdown (or ``signal``) to the init process."""
        sig = signal if signal is not None else self.signal.value
        return self._act(f"kill {sig}", lambda: self.container.kill(sig))

    def delete(self, force: bool | None = None) -> bool:
        """``delete``: remove a stopped container (``force``: kill it first)."""
        force = self.force.value if force is None else force
        return self._act("delete" + (" --force" if force else ""), lambda: self.container.delete(force=force))

    def refresh(self, keep_message: bool = False) -> None:
        """Re-read the state and the processes."""
        if not keep_message:
            self.message.value = ""
        self.state_view.value = html_repr(self.container)
        state = _safe_state(self.container)
        status = (state or {}).get("status")
        self.buttons["start"].disabled = status != "created"
        self.buttons["kill"].disabled = status not in ("created", "running", "paused")
        self.buttons["delete"].disabled = state is None
        self.processes_view.value = processes_html(self.container, state)

    # ------------------------------------------------------------------ auto refresh
    def _auto_refresh_changed(self, change) -> None:
        if change["new"]:
            self._stop.clear()
            self._thread = threading.Thread(target=self._refresh_loop, name="pyoci-panel-refresh", daemon=True)
            self._thread.start()
        else:
            self._stop_thread()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh(keep_message=True)
            except Exception as exc:  # keep the loop alive; show why
                self.message.value = error_html(f"refresh failed: {exc}")

    def _stop_thread(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 5)

    def close(self) -> None:
        """Stop the auto-refresh thread and close the widgets."""
        self._stop_thread()
        super().close()


def _safe_state(container: Any) -> dict | None:
    try:
        state = container.state()
    except Exception:
        return None
    return state if isinstance(state, dict) else getattr(state, "to_dict", lambda: None)()


def container_pids(container: Any, state: dict | None) -> list[int]:
    """The container's processes as ``pyoci ps`` lists them (``runtime/commands.py``,
    ``ps_command``): every process in its cgroup (``manager_from_state(...).pids()``, so those
    started with exec too), else its init while it lives."""
    if not state:
        return []
    try:
        cgroup = container._record().get("cgroup")  # what state.json keeps of the cgroup
        if cgroup:
            return sorted(manager_from_state(cgroup).pids())
    except (AttributeError, PyociError, OSError):
        pass  # not a runtime Container, or deleted meanwhile: its init, if any
    pid = state.get("pid")
    return [int(pid)] if pid and state.get("status") != "stopped" else []


def _proc_row(pid: int) -> tuple[str, str, str, str] | None:
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the state follows the last ')'
    comm = stat_text[stat_text.index("(") + 1: stat_text.rindex(")")]
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
    return str(pid), fields[1], fields[0], shlex.join(args) if args else f"[{comm}]"


def processes_html(container: Any, state: dict | None) -> str:
    """A ``ps``-like table (PID, PPID, state, command) of the container's processes."""
    pids = container_pids(container, state)
    rows = [r for r in (_proc_row(pid) for pid in pids) if r is not None]
    if not rows:
        return '<div style="font-size:12px;font-style:italic">no processes</div>'
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return wrap(records_wrap(column_heads("PID", "PPID", "state", "command"))(body))
