"""The real-kernel fixtures (``magic_root``, ``kernel``, ``clean_after``) of ``kernel_harness.py``,
for every test module here; absent where jupyter_client or ipykernel is missing (those modules
skip themselves)."""

try:
    import ipykernel  # noqa: F401
    import jupyter_client  # noqa: F401
except ImportError:
    pass
else:
    from kernel_harness import clean_after, kernel, magic_root  # noqa: F401
