"""Re-run the tutorial notebooks and store their new outputs (what nbval then compares against),
without the widgets' state: ``make notebooks``, or ``.venv/bin/python scripts/refresh_notebooks.py
[--strip-only] [NOTEBOOK ...]`` (default: every notebooks/*.ipynb).

nbclient and JupyterLab save every widget's state in the notebook's ``metadata.widgets``
(hundreds of KB for one ``SpecEditor``); the outputs are what the tutorials and nbval need, so
that state is never stored.  ``--strip-only`` removes it without executing anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def strip_widget_state(nb) -> bool:
    """Drop ``metadata.widgets``; True if there was any."""
    return nb.metadata.pop("widgets", None) is not None


def refresh(path: Path, execute: bool) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    strip_widget_state(nb)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strip-only", action="store_true", help="only remove the widget state")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        print(f"{'stripping' if args.strip_only else 'running'} {path}", file=sys.stderr)
        refresh(path, execute=not args.strip_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
