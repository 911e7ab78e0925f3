"""Entry script for the frozen app (PyInstaller needs a script without relative imports)."""

import sys

from resnext_gui.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
