"""runtime-spec 1.3 ``config.json``: pydantic models, the default spec, validation, diffs.

Names load lazily (PEP 562): ``import pyoci_nb.spec.defaults`` (used by ``pyoci spec`` and the
runtime) does not import pydantic; ``from pyoci_nb.spec import Spec`` does.

* ``Spec`` and its part models (``Process``, ``User``, ``Capabilities``, ``POSIXRlimit``/``Rlimit``,
  ``Root``, ``Mount``, ``Hook``, ``Hooks``, ``Linux``, ``Namespace``, ``IDMapping``, ``Device``,
  ``Resources`` ..., ``Seccomp``, ``SeccompSyscall``), ``State``, ``Features``;
* ``default_spec(rootless=False)``, ``load_spec(path | dict | json text)``;
* ``validate_config(dict, for_start=False) -> list[Problem]`` (standard library only),
  ``Problem``, ``ValidationReport``; ``SpecDiff``/``Change`` from ``Spec.diff()``.
"""

from __future__ import annotations

import sys

_STDLIB = {
    "Problem": "pyoci_nb.spec.problems",
    "ValidationReport": "pyoci_nb.spec.problems",
    "validate_config": "pyoci_nb.spec.validation",
    "validate_state": "pyoci_nb.spec.validation",
    "validate_features": "pyoci_nb.spec.validation",
    "default_config": "pyoci_nb.spec.defaults",
    "ALL_CAPABILITIES": "pyoci_nb.spec.capabilities",
    "SpecDiff": "pyoci_nb.spec.diff",
    "Change": "pyoci_nb.spec.diff",
    "diff_configs": "pyoci_nb.spec.diff",
}

_MODEL_NAMES = (
    "SpecModel", "Spec", "State", "Features", "default_spec", "load_spec", "problems_from_validation_error",
    "ALL_MODELS", "Process", "ConsoleSize", "User", "Capabilities", "POSIXRlimit", "Rlimit", "IOPriority",
    "Scheduler", "ExecCPUAffinity", "Root", "IDMapping", "Mount", "Hook", "Hooks", "Linux", "Namespace",
    "TimeOffset", "Device", "NetDevice", "DeviceCgroup", "Memory", "CPU", "Pids", "WeightDevice",
    "ThrottleDevice", "BlockIO", "HugepageLimit", "InterfacePriority", "Network", "Rdma", "Resources",
    "IntelRdt", "SeccompArg", "SeccompSyscall", "Seccomp", "Personality", "MemoryPolicy",
    "EnabledFeature", "CgroupFeatures", "SeccompFeatures", "IDMapFeature", "LinuxFeatures",
)

__all__ = sorted(set(_STDLIB) | set(_MODEL_NAMES))


def __getattr__(name: str):
    if name in _STDLIB:
        module_name = _STDLIB[name]
    elif name in _MODEL_NAMES:
        module_name = "pyoci_nb.spec.models"
    else:
        raise AttributeError(f"module 'pyoci_nb.spec' has no attribute {name!r}")
    __import__(module_name)  # importlib.import_module without importing importlib (CLI start-up)
    value = getattr(sys.modules[module_name], name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
