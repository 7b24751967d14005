"""A real browser: JupyterLab + headless Chromium run ``notebooks/00-quickstart.ipynb``.

The test starts JupyterLab on 127.0.0.1 (random free port, a token, a temporary copy of the
notebooks as its root, temporary runtime/config/settings/workspaces directories), opens the
quickstart in Debian's ``chromium`` driven by playwright (``executable_path``: no browser is
ever downloaded), runs all cells, and checks in the rendered page that

* every code cell ran (an execution count in each prompt) and no cell shows an error or
  stderr output,
* the ``SpecEditor`` widget really rendered (its tabs and fields are in the DOM and visible,
  and no "Loading widget..." placeholder or widget error is left), and
* an HTML repr of pyoci_nb (``.pyoci-repr``) rendered.

A screenshot of the page at the widget and one of the widget alone are saved in the test's
tmp dir (the path is printed).  JupyterLab, its kernel and the browser are shut down and the
notebook's containers removed afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "00-quickstart.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]  # known long: real engines / a real browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"jupyter lab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop_server(process: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure it is gone."""
    if process.poll() is None:
        request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, OSError):
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _remove_leftover_containers(tmp_root: Path, force_delete_all) -> None:
    """The notebook's workspace lives under our TMPDIR: force-delete whatever a failed run left."""
    for state_root in tmp_root.glob("pyoci-nb00-*/**/state"):
        if state_root.is_dir():
            force_delete_all(state_root)


@pytest.fixture
def jupyter_lab(tmp_path, request):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in (NOTEBOOK, "nbtools.py"):
        shutil.copy2(REPO / "notebooks" / name, notebooks / name)
    kernel_tmp = tmp_path / "tmp"
    kernel_tmp.mkdir()
    dirs = {name: tmp_path / name for name in ("runtime", "config", "settings", "workspaces")}
    for path in dirs.values():
        path.mkdir()
    # render every cell (JupyterLab 4 only renders the visible ones by default)
    tracker = dirs["settings"] / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = dirs["settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no network, no pop-up
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTER_CONFIG_DIR=str(dirs["config"]),
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), TMPDIR=str(kernel_tmp),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "jupyter-lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--port-retries=0", f"--IdentityProvider.token={token}", f"--notebook-dir={notebooks}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=False",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                   env=env, cwd=notebooks, start_new_session=True)
    try:
        _wait_for_server(f"{base}/api/status?token={token}", process, log)
        yield {"base": base, "token": token, "log": log, "tmp": tmp_path}
    finally:
        _stop_server(process, base, token)
        # tests/conftest.py (notebooks/ has a conftest too, so no plain `import conftest`)
        shared = request.config.pluginmanager.get_plugin(str(REPO / "tests" / "conftest.py"))
        _remove_leftover_containers(kernel_tmp, shared.force_delete_all)


def test_quickstart_runs_and_renders_the_spec_editor(jupyter_lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token = jupyter_lab["base"], jupyter_lab["token"]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=90_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=30_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # done when every code cell has an execution count and the kernel is idle
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                    return prompts.length > 0 && kernel.status === 'idle'
                        && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
                }""", timeout=150_000, polling=500)
            page.wait_for_timeout(1000)  # let the widget manager finish rendering views

            editor = page.locator(".jp-OutputArea-output .pyoci-spec-editor")
            editor.first.wait_for(state="visible", timeout=30_000)
            editor.first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "quickstart-page.png"))
            editor.first.screenshot(path=str(tmp_path / "spec-editor.png"))
            print(f"screenshots: {tmp_path / 'quickstart-page.png'} {tmp_path / 'spec-editor.png'}")

            page_text = page.inner_text(".jp-Notebook")
            assert "Loading widget" not in page_text, "a widget view never rendered"
            assert "Error displaying widget" not in page_text
            assert editor.count() == 1
            tab_titles = editor.locator(".lm-TabBar-tab").all_inner_texts()
            assert len(tab_titles) >= 8 and {"process", "mounts", "JSON", "diff"} <= {t.strip() for t in tab_titles}, tab_titles
            # the process tab's inputs are really there and hold the bundle's values
            hostname_inputs = editor.locator("input[type=text]")
            assert hostname_inputs.count() > 3
            assert "valid" in editor.first.inner_text()

            reprs = page.locator(".jp-OutputArea-output .pyoci-repr")
            assert reprs.count() >= 2, "the Bundle and Process HTML reprs did not render"
            assert reprs.first.is_visible()
            assert "quickstart" in reprs.first.inner_text()

            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            # no error anywhere; the one stderr output is the status of the cell that fails on
            # purpose (`exit 3` with --no-raise-error)
            assert [text.strip() for text in errors.all_inner_texts()] == ["%%container: exit status 3"]
            outputs = page.inner_text(".jp-Notebook")
            assert "hello from quickstart, I am PID 1" in outputs
            assert "Read-only file system" in outputs
            assert "workspace removed; containers still present at the end: none" in outputs
            assert not page_errors, page_errors
        finally:
            context.close()
