"""The README as a new user reads it: the two commands at the top work verbatim as root (no sudo
needed) and as a user with sudo (``sh scripts/root-make.sh demo|test`` runs make as root, through
sudo only when not root); the quick start runs, twice (a notebook cell run again); the option
list of ``%%container`` is the magic's real one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = [shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]


@pytest.fixture
def sandbox():
    """A copy of the script in a repository-like tree, and fake `make` and `sudo` that say how
    they were called (the real ones would set up the machine)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="pyoci-readme-"))  # not under pytest's 0700 tree: nobody runs it
    os.chmod(tmp_path, 0o755)
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "root-make.sh", tree / "scripts")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text('#!/bin/sh\necho "make as uid $(id -u) in $PWD: $*"\n')
    (fake / "sudo").write_text('#!/bin/sh\necho "sudo $*"\n')
    for path in (fake / "make", fake / "sudo"):
        path.chmod(0o755)
    for tool in ("sh", "id", "dirname"):  # PATH is only this directory: no real sudo or make
        (fake / tool).symlink_to(shutil.which(tool))
    yield tree, fake
    shutil.rmtree(tmp_path)


def run(command: str, tree: Path, path: str, prefix=()):
    return subprocess.run([*prefix, "sh", "-c", command], cwd=tree, capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "HOME": "/"})


def test_the_readme_commands_are_the_script():
    assert readme_commands() == ["sh scripts/root-make.sh demo", "sh scripts/root-make.sh test"]


@pytest.mark.root
def test_as_root_make_runs_directly_without_sudo(sandbox):
    tree, fake = sandbox
    for command in readme_commands():
        result = run(command, tree, str(fake))
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"make as uid 0 in {tree}: {command.split()[-1]}\n"  # never "sudo ..."


@pytest.mark.root
def test_as_a_user_it_goes_through_sudo(sandbox):
    tree, fake = sandbox
    result = run("sh scripts/root-make.sh demo", tree, str(fake), NOBODY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sudo sh scripts/root-make.sh demo\n"


@pytest.mark.root
def test_as_a_user_without_sudo_it_says_what_to_do(sandbox):
    tree, fake = sandbox
    (fake / "sudo").unlink()
    result = run("sh scripts/root-make.sh test", tree, str(fake), NOBODY)
    assert result.returncode == 1
    assert "containers need root" in result.stderr and "run this as root" in result.stderr
    assert result.stdout == ""


@pytest.mark.root
def test_the_quick_start_runs_and_runs_again(tmp_path):
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README, re.S).group(1)
    assert "overwrite=True" in code
    twice = "for _ in range(2):\n" + "".join(f"    {line}\n" for line in code.splitlines())
    result = subprocess.run([sys.executable, "-c", twice], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("0 hello, I am PID 1 in a container\nuid=0(root)") == 2, result.stdout
    assert "runc" not in result.stdout


def test_the_readme_lists_every_option_of_the_magic():
    from pyoci_nb.notebook.magic import ContainerMagics

    paragraph = README[README.index("`%%container --help` lists the options"):]
    paragraph = paragraph[:paragraph.index("%container_rm")]
    options = [opt for action in ContainerMagics.container.parser._actions
               for opt in action.option_strings if opt.startswith("--") and opt != "--help"]
    assert len(options) > 15
    missing = [opt for opt in options if f"`{opt}" not in paragraph and f"/{opt}" not in paragraph]
    assert not missing, f"README's %%container option list lacks {missing}"
