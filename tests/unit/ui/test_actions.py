"""The commands table (ui/actions.py): menus built from data, shortcuts, handlers, enabled-when, the context menu."""


from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

from resnext_gui.ui.actions import CONTEXT_MENU, MENUS, Actions, Command, Submenu


class Owner(QWidget):
    """Stands in for the window: every handler the table names records its call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.state = {"can_undo": False, "can_download": True, "cuda_available": False, "bf16_offered": False,
                      "has_photo": True, "can_retry": False}

    def __getattr__(self, name):  # intake.open_files, view.zoom_by, ...: a recorder at any dotted path
        if name.startswith("_"):
            raise AttributeError(name)
        return Recorder(self, name)


class Recorder:
    def __init__(self, owner, path):
        self.owner, self.path = owner, path

    def __getattr__(self, name):
        return Recorder(self.owner, f"{self.path}.{name}")

    def __call__(self, *args):
        self.owner.calls.append((self.path, *args))


def build(owner):
    actions = Actions(owner, {k: (lambda k=k: owner.state[k]) for k in owner.state})
    bar = QMenuBar(owner)
    actions.build(bar)
    return actions, bar


def test_the_menus_are_the_table(qtbot):
    owner = Owner()
    qtbot.addWidget(owner)
    actions, bar = build(owner)
    menus = [a.menu() for a in bar.actions()]
    assert [m.title() for m in menus] == [title for title, _ in MENUS]
    for menu, (_title, entries) in zip(menus, MENUS):
        texts = [a.text() if not a.isSeparator() else None for a in menu.actions()]
        assert texts == [None if e is None else e.text for e in entries]
    assert actions["zoom_in"].shortcuts()[1:] == [QKeySequence("+"), QKeySequence("=")]
    assert actions["full_screen"].shortcut() == QKeySequence("F11")
    assert actions["open_files"].shortcut() == QKeySequence(QKeySequence.StandardKey.Open)
    assert actions["retry"].statusTip() == "Classify failed or stopped photos again"
    assert all(isinstance(e, (Command, Submenu)) or e is None for _t, entries in MENUS for e in entries)


def test_each_command_calls_its_handler_with_its_arguments(qtbot):
    owner = Owner()
    qtbot.addWidget(owner)
    actions, _bar = build(owner)
    actions["open_files"].trigger()
    actions["zoom_out"].trigger()
    actions["class_3"].trigger()
    actions["backend_torch"].trigger()
    owner.state["bf16_offered"] = True
    actions.refresh()
    actions["bf16"].trigger()  # checkable: the handler gets the new state
    assert owner.calls == [("intake.open_files",), ("view.zoom_by", 0.8), ("controls.top5.select", 3),
                           ("model.set_backend", "torch"), ("model.set_bf16", True)]


def test_enabled_when_and_checked_groups(qtbot):
    owner = Owner()
    qtbot.addWidget(owner)
    actions, _bar = build(owner)
    assert not actions["undo"].isEnabled() and not actions["device_cuda"].isEnabled() and actions["download"].isEnabled()
    owner.state.update(can_undo=True, can_download=False)
    actions.refresh()
    assert actions["undo"].isEnabled() and not actions["download"].isEnabled()
    actions.check("mode", "heatmap")
    assert [a.isChecked() for a in actions.groups["mode"].actions()] == [False, False, True]
    actions["mode_original"].trigger()
    assert ("set_mode", "original") in owner.calls


def test_the_context_menu_enables_for_the_photo_and_gives_the_menus_their_state_back(qtbot):
    owner = Owner()
    qtbot.addWidget(owner)
    actions, _bar = build(owner)
    owner.state.update(has_photo=True, can_retry=False)
    menu = actions.context_menu(QMenu(owner))
    keys = [e[0] if e else None for e in CONTEXT_MENU]
    assert [a.text() if not a.isSeparator() else None for a in menu.actions()] == \
        [actions[k].text() if k else None for k in keys]
    assert actions["copy"].isEnabled() and not actions["retry"].isEnabled()
    menu.aboutToHide.emit()
    assert actions["retry"].isEnabled()  # Ctrl+R works again from the menus


def test_every_handler_and_predicate_the_table_names_is_the_real_window_s(qtbot, tmp_path):
    """The recorder above answers any name; the window must have each one, callable with the command's arguments."""
    import inspect
    import operator

    from PySide6.QtCore import QSettings

    from resnext_gui.ui.main_window import MainWindow
    from tests.support.ui_fakes import FakeWorker

    win = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                     worker=FakeWorker())
    qtbot.addWidget(win)
    commands = [e for _title, entries in MENUS for e in entries if isinstance(e, Command)]
    assert len(commands) > 40
    for cmd in commands:
        handler = operator.attrgetter(cmd.handler)(win)
        args = (*cmd.args, True) if cmd.checked_arg else cmd.args
        assert callable(handler), cmd.key
        try:
            signature = inspect.signature(handler)
        except ValueError:  # one of Qt's own slots (close, showFullScreen): no Python signature to hold it to
            assert not args, cmd.key
            continue
        signature.bind(*args)  # a TypeError names a command the window cannot take
        if cmd.enabled_when is not None:
            assert isinstance(win.commands.predicates[cmd.enabled_when](), bool), cmd.key
    for key, predicate in (e for e in CONTEXT_MENU if e is not None):
        assert key in win.commands.by_key and (predicate is None or predicate in win.commands.predicates)
