"""Fixtures for the Qt tests: an isolated QSettings file, a running window, drops, and a no-leak guard."""

from tests.support.qt_fixtures import *  # noqa: F403  (the fixtures themselves)
