"""Files the runtime writes where other local users can reach: they must not redirect them.

* ``--pid-file`` in a shared directory: the runtime (root) writes a temporary file beside it and
  renames it.  A link planted at a predictable temporary name made root write through it into
  any host file.
* The notebook magic's base directory (``<default root>-nb``): another user who creates it first
  (or makes it writable) could swap the session directory, whose bundles hold set-user-ID
  programs, for a link.
"""

from __future__ import annotations

import os

import pytest


@pytest.mark.pyoci_only
def test_pid_file_is_not_written_through_a_planted_link(busybox_bundle, state_root, container_id,
                                                        tmp_path):
    from pyoci_nb.runtime.container import Container

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("host data\n")
    pid_file = shared / "container.pid"
    # the names an attacker can guess: the old temporary name (pid of the runtime) and the file itself
    os.symlink(victim, f"{pid_file}.{os.getpid()}.tmp")
    container = Container.create(busybox_bundle, id=container_id, root=str(state_root),
                                 pid_file=str(pid_file), stdin=None, stdout=None, stderr=None)
    try:
        assert victim.read_text() == "host data\n", "the runtime wrote its pid through the planted link"
        assert not pid_file.is_symlink()
        assert int(pid_file.read_text()) == container.pid
    finally:
        container.delete(force=True)


@pytest.mark.pyoci_only
@pytest.mark.parametrize("how", ["owned by another user", "writable by others"])
def test_magic_base_directory_of_another_user_is_refused(tmp_path, how):
    from pyoci_nb.errors import PyociError
    from pyoci_nb.notebook.magic import MagicSession

    base = tmp_path / "pyoci-0-nb"
    base.mkdir()
    if how == "owned by another user":
        os.chown(base, 65534, 65534)
    else:
        base.chmod(0o777)
    session = MagicSession(base_dir=str(base))
    try:
        with pytest.raises(PyociError, match="state root"):
            session.ensure_dir()
        assert list(base.iterdir()) == [], "a session directory was made in it"
    finally:
        session.shutdown()


@pytest.mark.pyoci_only
def test_magic_base_directory_is_private(tmp_path):
    from pyoci_nb.notebook.magic import MagicSession

    base = tmp_path / "nb"
    session = MagicSession(base_dir=str(base))
    try:
        session.ensure_dir()
        assert base.stat().st_mode & 0o077 == 0
        assert (session.dir / "state").stat().st_mode & 0o077 == 0
    finally:
        session.shutdown()
