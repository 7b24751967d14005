"""pyoci_nb in Jupyter: rich reprs, ipywidgets editors and the ``%%container`` magic.

* ``reprs``  -- ``html_repr(obj)`` / ``text_repr(obj)`` for every public object (Spec and its
  parts, State, Features, SpecDiff, ValidationReport, Bundle, Container, run results); the
  classes call them from ``_repr_html_`` / ``_repr_pretty_``.  A package, one module per object
  family; ``svg`` draws the pictures, ``glossary`` says what each field means,
  ``reprs/style.css`` is the stylesheet they embed.
* ``widgets`` -- ``SpecEditor``, ``BundleBrowser``, ``ContainerPanel`` (ipywidgets 8), a package.
* ``magic`` / ``probe`` -- ``%%container`` and the host probe table.

Nothing is imported here, so ``import pyoci_nb.notebook.reprs`` stays cheap.
"""
