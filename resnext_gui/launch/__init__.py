"""Entry and start-up: which front end a command line asks for (the window, the CLI, the self-test, the desktop entry), and the checks before Qt starts."""

from __future__ import annotations

import os
import sys

CLI_COMMANDS = ("classify", "train", "weights", "similar", "duplicates")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(os.environ.get(v) for v in ("LC_ALL", "LC_CTYPE", "LANG")):
        os.environ["LC_CTYPE"] = "C.UTF-8"  # a bare environment: file names are UTF-8, and Qt wants to know
    if argv and argv[0] not in CLI_COMMANDS and "--version" in argv:  # before anything imports Qt or torch
        from .. import version_line

        print(version_line())
        return 0
    if argv and argv[0] in CLI_COMMANDS:
        from ..cli import main as cli_main

        return cli_main(argv)
    for flag, action in (("--install-desktop-entry", "install"), ("--uninstall-desktop-entry", "uninstall")):
        if flag in argv:
            from .desktop_entry import main as desktop_main

            return desktop_main(action)
    if "--self-test" in argv:
        from .selftest import main as selftest_main

        return selftest_main([a for a in argv if a != "--self-test"])
    from .app import main as app_main

    return app_main(argv)
