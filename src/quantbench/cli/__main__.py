"""``python -m quantbench.cli``: the ``quantbench`` command."""

import sys

from quantbench.cli import main

if __name__ == "__main__":  # worker processes import the main module again
    sys.exit(main())
