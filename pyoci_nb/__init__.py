"""pyoci_nb: a Jupyter-friendly, runc-compatible OCI runtime written in Python.

The package is split so that the command line stays fast:

* ``pyoci_nb.runtime`` -- the runtime core (standard library only): lifecycle, init,
  namespaces, mounts, cgroups, seccomp, hooks, thin ctypes syscall layer.
* ``pyoci_nb.spec`` -- pydantic v2 models of runtime-spec 1.3 ``config.json``.
* ``pyoci_nb.bundle`` / ``pyoci_nb.rootfs`` -- OCI bundles and root filesystems.
* ``pyoci_nb.notebook`` -- HTML reprs, ipywidgets editors and the ``%%container`` magic.

Public names are loaded lazily (PEP 562) so ``import pyoci_nb`` costs almost nothing and
``pyoci --version`` never imports pydantic, ipywidgets or pyroute2.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"
#: The version of the OCI runtime specification this package implements.
OCI_VERSION = "1.3.0"

# public name -> "module:attribute"
_LAZY = {
    "Spec": "pyoci_nb.spec:Spec",
    "State": "pyoci_nb.spec:State",
    "Features": "pyoci_nb.spec:Features",
    "default_spec": "pyoci_nb.spec:default_spec",
    "load_spec": "pyoci_nb.spec:load_spec",
    "Bundle": "pyoci_nb.bundle:Bundle",
    "rootfs": "pyoci_nb.rootfs:",
    "Container": "pyoci_nb.runtime.container:Container",
    "run": "pyoci_nb.runtime.container:run",
    "list_containers": "pyoci_nb.runtime.container:list_containers",
    "probe": "pyoci_nb.notebook.probe:probe",
    "pull": "pyoci_nb.image.image:pull",
    "Image": "pyoci_nb.image.image:Image",
    "SpecEditor": "pyoci_nb.notebook.widgets:SpecEditor",
    "BundleBrowser": "pyoci_nb.notebook.widgets:BundleBrowser",
    "ContainerPanel": "pyoci_nb.notebook.widgets:ContainerPanel",
    "PyociError": "pyoci_nb.errors:PyociError",
}

__all__ = sorted(_LAZY) + ["__version__", "OCI_VERSION", "load_ipython_extension"]


def __getattr__(name: str):
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pyoci_nb' has no attribute {name!r}") from None
    module_name, _, attribute = target.partition(":")
    __import__(module_name)  # importlib.import_module without importing importlib (CLI start-up)
    module = sys.modules[module_name]
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value
    return value


def __dir__():
    return __all__


def load_ipython_extension(ipython):
    """``%load_ext pyoci_nb``: register ``%%container``, ``%containers`` and ``%container_rm``."""
    from pyoci_nb.notebook.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):
    """``%unload_ext pyoci_nb``: remove named containers made by the magic."""
    from pyoci_nb.notebook.magic import unload_ipython_extension as _unload

    _unload(ipython)
