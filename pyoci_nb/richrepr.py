"""One mixin that gives every public object its Jupyter/IPython reprs.

Standard library only (the runtime's ``Container`` uses it on the CLI path): the renderers in
``pyoci_nb.notebook.reprs`` are imported only when a repr is asked for.
"""

from __future__ import annotations


class ReprMixin:
    """Rich reprs for Jupyter/IPython, delegated lazily to ``pyoci_nb.notebook.reprs``.

    When that module cannot be imported (or fails), ``_repr_html_`` falls back to the escaped
    plain text in a ``<pre>`` so a repr never raises.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer stops at the first class in the MRO that defines
        # _repr_pretty_ or __repr__: a dataclass's generated __repr__ would win otherwise.
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = ReprMixin._repr_pretty_

    def _repr_html_(self) -> str:
        try:
            from pyoci_nb.notebook.reprs import html_repr

            return html_repr(self)
        except Exception:
            import html

            return f"<pre>{html.escape(str(self))}</pre>"

    def _repr_pretty_(self, p, cycle) -> None:
        if cycle:
            p.text(f"{type(self).__name__}(...)")
            return
        try:
            from pyoci_nb.notebook.reprs import text_repr

            text = text_repr(self)
        except Exception:
            text = str(self)
        p.text(text)
