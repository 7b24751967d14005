"""Errors of pyoci_nb.

Every error says *what* went wrong, *where* (a JSON path such as ``process.capabilities.bounding[2]``,
a file path, or a container id), *why* (the rule that was broken) and, when there is one, *what to do*.
The runtime core raises these; the CLI prints ``str(error)`` and exits non-zero; the notebook layer
renders them.  Standard library only: imported by the CLI fast path.
"""

from __future__ import annotations


class PyociError(Exception):
    """Base class: a message made of what / where / why / hint.

    ``str(err)`` is one readable line (plus a hint line when given); the parts are kept as
    attributes so reprs and logs can show them separately.
    """

    def __init__(self, what: str, *, where: str | None = None, why: str | None = None,
                 hint: str | None = None):
        self.what = what
        self.where = where
        self.why = why
        self.hint = hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        msg = self.what
        if self.where:
            msg = f"{self.where}: {msg}"
        if self.why:
            msg = f"{msg}: {self.why}"
        if self.hint:
            msg = f"{msg} ({self.hint})"
        return msg


class ConfigError(PyociError, ValueError):
    """config.json (or a process.json) breaks a rule of the runtime spec."""


class BundleError(PyociError):
    """The bundle directory or tarball is unusable (missing config.json, unsafe tar member...)."""


class RootfsError(PyociError):
    """A root filesystem could not be built (missing busybox-static, unsafe path...)."""


class ContainerError(PyociError):
    """A lifecycle operation failed."""


class ContainerNotFound(ContainerError):
    """No container with this id in the state root. The message contains runc's words
    "does not exist", which engines match on."""

    def __init__(self, container_id: str, root: str | None = None):
        where = f"container {container_id!r}"
        super().__init__("container does not exist", where=where,
                         why=f"no state under {root}" if root else None)
        self.container_id = container_id


class ContainerExists(ContainerError):
    """create with an id that is already in use."""


class InvalidState(ContainerError):
    """An operation that the container's current status does not allow (runtime.md: e.g. start
    of a container that is not ``created``; delete of one that is not ``stopped``)."""


class SetupError(ContainerError):
    """A step of container set-up (in the runtime or in the container's init) failed."""


class UnsupportedError(PyociError):
    """The host or this runtime does not offer a feature the config asks for."""
