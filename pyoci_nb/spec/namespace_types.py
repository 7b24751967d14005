"""The namespace types of the runtime spec (config-linux.md "Namespaces": ``linux.namespaces[].type``),
in the spec's order.  Standard library only: the runtime, the validator and the widgets share it."""

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
