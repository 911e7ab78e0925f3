"""The Qt binding keeps its references: PySide6 6.12.0 on CPython < 3.12 loses one to None per void call and aborts."""

import sys

import PySide6
from PySide6.QtWidgets import QLabel

from resnext_gui.launch.qt_check import binding_problem, lost_references


def test_ten_thousand_void_calls_and_emits_keep_none_and_true(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    none_before = sys.getrefcount(None)
    for _ in range(10_000):
        label.setText("x")  # returns nothing: the leak this guards against took one None reference each
    assert none_before - sys.getrefcount(None) < 100, f"PySide6 {PySide6.__version__} loses references to None"
    lost = lost_references(10_000)
    assert lost["None"] < 100 and lost["True"] < 100, lost
    assert binding_problem() is None


def test_a_leaking_binding_is_named_plainly(monkeypatch):
    import resnext_gui.launch.qt_check as qc

    monkeypatch.setattr(qc, "lost_references", lambda calls: {"None": calls, "True": calls})
    message = qc.binding_problem(200)
    assert message and PySide6.__version__ in message and "!=6.12.0" in message and "crash" in message


def test_the_broken_release_is_excluded_from_the_requirements():
    """What pip resolves against: the installed distribution's own requirement on the binding."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    (binding,) = [Requirement(r) for r in requires("resnext-gui") or [] if Requirement(r).name == "PySide6-Essentials"]
    assert not binding.specifier.contains("6.12.0") and binding.specifier.contains("6.11.3")
    assert PySide6.__version__ != "6.12.0" or sys.version_info >= (3, 12)


def test_app_refuses_to_start_on_a_leaking_binding(monkeypatch, capsys, qapp):
    import resnext_gui.launch.qt_check as qc
    from resnext_gui.launch import app

    monkeypatch.setattr(qc, "binding_problem", lambda calls=200: "PySide6 X loses references; would crash")
    from PySide6.QtWidgets import QApplication, QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda *a: shown.append(a[2]))
    assert app.main([]) == 3
    assert "would crash" in capsys.readouterr().err and shown == []  # offscreen: nobody to click a dialog away
    monkeypatch.setattr(QApplication, "platformName", staticmethod(lambda: "xcb"))  # as on a desktop
    assert app.main([]) == 3
    assert shown == ["PySide6 X loses references; would crash"]
