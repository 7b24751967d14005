"""``python -m pyoci_nb`` is the same as the ``pyoci`` command."""
import sys

from pyoci_nb.cli import main

sys.exit(main())
