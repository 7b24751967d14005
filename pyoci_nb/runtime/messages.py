"""Every message between the runtime and the processes it forks: the container's init, the
intermediate, an exec'd process and a container's resident exec helper.  One class per
message, with its fields; ``init.Channel`` carries them as JSON objects ``{"type": KIND, ...}``
(file descriptors beside them in SCM_RIGHTS).  Standard library only, no imports after use.

Create (runtime <-> init, in this order; optional ones in brackets)::

    [IdMap -> IdMapDone]   the intermediate asks for the user namespace's id maps
    [Pid]                  the intermediate reports init's pid
    CgroupJoined           the runtime moved init into the container's cgroups
    [Hooks -> HooksDone]   prestart/createRuntime hooks run by the runtime
    [SeccompListener -> SeccompListenerDone]   a SCMP_ACT_NOTIFY listener fd for the agent
    Ready                  init waits on the exec FIFO
    Warning* / Error       at any point; Error ends it

Exec: ``Go`` (the process is in the container's cgroups), then like create; the channel closing
on execve is success, ``ExecFailed`` (written by the exec trampoline) is not.  The exec helper
answers ``ExecRequest`` with ``Pid`` (or ``Error``) and says ``Ready`` once it has joined.
"""

from __future__ import annotations

_KINDS: dict[str, type] = {}


class ProtocolError(RuntimeError):
    """A message that is not one of these, or not the one expected."""


class Message:
    """Base: ``KIND`` is the ``type`` on the wire; the fields are the ``__slots__``."""

    __slots__: tuple[str, ...] = ()
    KIND = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KINDS[cls.KIND] = cls

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def to_wire(self) -> dict:
        """The JSON object sent: ``{"type": KIND, field: value ...}``."""
        data = {"type": self.KIND}
        for name in self.__slots__:
            data[name] = getattr(self, name)
        return data

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


def from_wire(data: dict) -> Message:
    """The message a received JSON object encodes (ProtocolError if it encodes none)."""
    kind = _KINDS.get(str(data.get("type"))) if isinstance(data, dict) else None
    if kind is None:
        raise ProtocolError(f"protocol error: not a message of pyoci's: {data!r:.200}")
    return kind(**{key: value for key, value in data.items() if key != "type"})


class IdMap(Message):
    """intermediate -> runtime: the new user namespace exists; write its uid/gid maps."""
    KIND = "idmap"


class IdMapDone(Message):
    """runtime -> intermediate: the maps are written."""
    KIND = "idmap-done"


class Pid(Message):
    """The pid (in the runtime's pid namespace) of the process just forked: init, from the
    intermediate; an exec'd process, from the exec intermediate or the exec helper."""
    __slots__ = ("pid",)
    KIND = "pid"
    pid: int


class CgroupJoined(Message):
    """runtime -> init: init is in the container's cgroups (so are its children from now)."""
    KIND = "cgroup-joined"


class Hooks(Message):
    """init -> runtime: run the prestart and createRuntime hooks now (runtime.md step 6)."""
    KIND = "hooks"


class HooksDone(Message):
    """runtime -> init: they ran; ``state`` is the state object the container's hooks get."""
    __slots__ = ("state",)
    KIND = "hooks-done"
    state: dict


class SeccompListener(Message):
    """init or an exec'd process -> runtime: its seccomp notify fd rides along (SCM_RIGHTS)."""
    KIND = "seccomp-listener"


class SeccompListenerDone(Message):
    """runtime -> the same: the fd went to ``linux.seccomp.listenerPath``."""
    KIND = "seccomp-listener-done"


class Ready(Message):
    """init -> runtime: set up, waiting on the exec FIFO; exec helper -> runtime: joined."""
    KIND = "ready"


class LogWarning(Message):
    """Something the runtime's log should say (a capability this kernel does not know ...)."""
    __slots__ = ("message",)
    KIND = "warning"
    message: str


class Error(Message):
    """The step that failed (``step``), what the system said (``message``, ``errno``)."""
    __slots__ = ("message", "step", "errno")
    KIND = "error"
    message: str
    step: str | None
    errno: int | None


class ExecFailed(Message):
    """The exec trampoline's report: its execve of the program failed with ``errno``."""
    __slots__ = ("errno",)
    KIND = "exec-failed"
    errno: int


class Go(Message):
    """runtime -> an exec's process (or its intermediate): it is in the cgroups, go on."""
    KIND = "go"


class ExecRequest(Message):
    """runtime -> a container's exec helper: fork ``process`` (a config.json process object);
    ``stdio`` gives, for fds 0-2, the index of the fd sent along (after the exec's own
    channel, which comes first) or None for /dev/null."""
    __slots__ = ("process", "stdio")
    KIND = "exec"
    process: dict
    stdio: list
