"""The runtime core: everything needed to create and run containers, on the standard library only.

Data path, top to bottom:

* ``container.py``  lifecycle (create, start, state, kill, delete, run, exec) and the Python API
* ``state.py``      state directory per container: atomic ``state.json``, per-id lock, exec FIFO
* ``init.py``       what runs inside the new namespaces before the user process is exec'd
* ``namespaces.py`` unshare/setns and id mappings
* ``mounts.py``     rootfs propagation, mounts, /dev, pivot_root, masked and read-only paths
* ``inroot.py``     paths inside a root resolved through file descriptors (the one resolver)
* ``process.py``    user, rlimits, capabilities, no_new_privs, console, exec
* ``hooks.py``      OCI hooks
* ``cgroups/``      cgroup v1 and v2 drivers
* ``seccomp.py``    libseccomp through ctypes
* ``syscalls.py``   the thin ctypes layer over libc
* ``log.py``        runc-compatible ``--log`` output
* ``jsonio.py``     JSON through the ``_json`` accelerator (``json`` would import ``re``)
"""
