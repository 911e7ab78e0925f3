"""`python -m resnext_gui` and the `resnext-gui` command: the window, or the CLI's commands (resnext_gui.launch decides)."""

from __future__ import annotations

import sys

from .launch import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
