"""The suite's own guards (issue 13): a per-test timeout, and notebooks stored without widget state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_test_has_a_timeout(request):
    """pytest-timeout is active with pyproject's default, so one hang fails one test."""
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) >= 60


def test_notebooks_store_outputs_but_no_widget_state():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        assert "widgets" not in nb["metadata"], f"{path.name}: widget state stored (scripts/refresh_notebooks.py --strip-only)"
        assert any(cell.get("outputs") for cell in nb["cells"]), f"{path.name}: its outputs were lost"


def test_the_refresh_script_strips_widget_state(tmp_path):
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "1",
                     "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                  "data": {"text/plain": "1"}}]}],
          "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    subprocess.run([sys.executable, str(REPO / "scripts" / "refresh_notebooks.py"), "--strip-only", str(path)],
                   check=True, capture_output=True, timeout=120)
    stored = json.loads(path.read_text())
    assert "widgets" not in stored["metadata"] and stored["cells"][0]["outputs"]
