"""The window's commands as data: text, shortcuts, tip, handler and when each is enabled; menus are built from it."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar

Key = str | QKeySequence.StandardKey
SK = QKeySequence.StandardKey


@dataclass(frozen=True)
class Command:
    """One menu command. ``handler`` is a dotted path from the window ("intake.open_files"), called with
    ``args`` (and the checked state where ``checked_arg``); ``enabled_when`` names a predicate the window
    provides, looked at whenever the actions are refreshed."""

    key: str
    text: str
    handler: str
    shortcuts: Sequence[Key] = ()
    tip: str | None = None  # shown in the status bar
    enabled_when: str | None = None
    group: str | None = None  # checkable, one of a group (the action's data is ``args[0]``)
    checkable: bool = False
    checked_arg: bool = False
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Submenu:
    key: str
    text: str
    tooltips: bool = False


SEPARATOR = None
Entry = Command | Submenu | None


def _mode(key: str, text: str, shortcut: str) -> Command:
    return Command(f"mode_{key}", text, "set_mode", (shortcut,), group="mode", args=(key,))


MENUS: list[tuple[str, list[Entry]]] = [
    ("&File", [
        Command("open_files", "&Open Photos…", "intake.open_files", (SK.Open,)),
        Command("open_folder", "Open &Folder…", "intake.open_folder", ("Ctrl+Shift+O",)),
        Command("paste", "&Paste Image", "intake.paste", (SK.Paste,)),
        SEPARATOR,
        Command("open_weights", "Open &Weights…", "model.choose_weights", tip="Use your own ResNeXt-50 checkpoint"),
        Submenu("recent", "&Recent Weights"),
        Command("download", "&Download ImageNet Weights…", "model.download_weights", enabled_when="can_download"),
        Command("teach", "&Teach New Classes…", "model.teach", tip="Train a model on your own classes: one folder of photos each"),
        SEPARATOR,
        Command("save", "&Save Overlay as PNG…", "presenter.save_overlay", (SK.Save,)),
        Command("export", "&Export Results…", "presenter.export_dialog", ("Ctrl+E",), tip="All processed photos as CSV or JSON"),
        Command("write_keywords", "Write &Keywords…", "write_keywords",
                tip="The top classes as XMP keywords beside each photo, for digiKam, darktable, Lightroom"),
        SEPARATOR,
        Command("quit", "&Quit", "close", (SK.Quit,)),
    ]),
    ("&Edit", [
        Command("undo", "&Undo", "controller.undo", (SK.Undo,), enabled_when="can_undo",
                tip="Bring back what the last Clear, Remove or Move to Trash took out of the gallery"),
        SEPARATOR,
        Command("copy", "&Copy Result and Overlay", "presenter.copy", (SK.Copy,), tip="The top 5 as text and the overlay as an image"),
        Command("remove", "&Remove Photo", "presenter.remove_selected", (SK.Delete,)),
        Command("forget", "For&get Photo", "forget_photo",
                tip="Remove the selected photo from the gallery and its results from the library"),
        Command("retry", "Re&try", "controller.retry", ("Ctrl+R",), tip="Classify failed or stopped photos again"),
        Command("find", "&Find…", "gallery_bar.search.setFocus", (SK.Find,)),
        Command("search_library", "Search the &Library…", "search_library", ("Ctrl+Shift+F",),
                tip="Find photos classified on any earlier day, by label or file name"),
        Command("find_similar", "Find &Similar", "similar.find_similar", ("Ctrl+Shift+M",),
                tip="Order the gallery by how alike each photo is to the selected one (Esc goes back)"),
        Command("find_duplicates", "Find &Duplicates…", "duplicates.open_dialog",
                tip="Group the gallery's near-duplicates, keep the best copy of each and move the others to the Trash"),
        Command("clear_library", "Clear Li&brary…", "library.clear_library", tip="Remove every kept result"),
        SEPARATOR,
        Command("stop", "S&top", "stop", ("Esc",)),
        Command("clear", "&Clear All", "clear", ("Ctrl+Shift+Backspace",)),
    ]),
    ("&View", [
        _mode("original", "&Original", "Ctrl+1"),
        _mode("overlay", "O&verlay", "Ctrl+2"),
        _mode("heatmap", "&Heatmap Only", "Ctrl+3"),
        SEPARATOR,
        *[Command(f"class_{r}", f"Heatmap of Class {r}", "controls.top5.select", (str(r),), args=(r,)) for r in range(1, 6)],
        SEPARATOR,
        Command("zoom_in", "Zoom &In", "view.zoom_by", (SK.ZoomIn, "+", "="), args=(1.25,)),
        Command("zoom_out", "Zoom &Out", "view.zoom_by", (SK.ZoomOut, "-"), args=(0.8,)),
        Command("fit", "&Fit in Window", "view.fit", ("0",)),
        Command("actual_size", "&Actual Size", "view.actual_size", ("Ctrl+0",)),
        Command("full_screen", "&Full Screen", "toggle_full_screen", ("F11", SK.FullScreen)),
    ]),
    ("&Device", [
        Command("device_auto", "&Auto (GPU when available)", "model.set_device", group="device", args=("auto",)),
        Command("device_cpu", "&CPU", "model.set_device", group="device", args=("cpu",)),
        Command("device_cuda", "C&UDA", "model.set_device", group="device", args=("cuda",), enabled_when="cuda_available"),
        SEPARATOR,
        Command("backend_auto", "CPU Runtime: &Automatic", "model.set_backend", group="backend", args=("auto",),
                tip="OpenVINO when installed, else PyTorch"),
        Command("backend_torch", "CPU Runtime: &PyTorch", "model.set_backend", group="backend", args=("torch",),
                tip="PyTorch's own forward pass"),
        Command("backend_openvino", "CPU Runtime: &OpenVINO", "model.set_backend", group="backend", args=("openvino",),
                tip="Faster on the CPU; PyTorch if it fails"),
        Command("bf16", "Fast &bfloat16 (approximate)", "model.set_bf16", checkable=True, checked_arg=True,
                enabled_when="bf16_offered"),
    ]),
    ("&Help", [
        Command("log_folder", "Show &Log Folder", "show_log_folder",
                tip="The app's log: what it did, and the details of anything that went wrong (to send with a report)"),
        SEPARATOR,
        Command("about", "&About resnext-gui", "model.about"),
    ]),
]

MENU_TOOLTIPS = {"&Device"}  # menus whose actions' tooltips say why one is disabled

# The gallery's context menu: commands, each with the predicate that enables it there (None: as in the menus).
CONTEXT_MENU: list[tuple[str, str | None] | None] = [
    ("copy", "has_photo"), ("find_similar", "has_photo"), ("retry", "can_retry"), ("remove", "has_photo"), ("forget", "has_photo"), ("save", None),
    SEPARATOR, ("undo", None),
]


@dataclass
class Actions:
    """The QActions made from the table, by key; ``refresh`` applies every ``enabled_when``."""

    owner: QObject
    predicates: dict[str, Callable[[], bool]]
    by_key: dict[str, QAction] = field(default_factory=dict)
    groups: dict[str, QActionGroup] = field(default_factory=dict)
    menus: dict[str, QMenu] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)

    def __getitem__(self, key: str) -> QAction:
        return self.by_key[key]

    def build(self, menubar: QMenuBar, menus: list[tuple[str, list[Entry]]] = MENUS) -> None:
        for title, entries in menus:
            menu = menubar.addMenu(title)
            menu.setToolTipsVisible(title in MENU_TOOLTIPS)
            for entry in entries:
                if entry is None:
                    menu.addSeparator()
                elif isinstance(entry, Submenu):
                    self.menus[entry.key] = menu.addMenu(entry.text)
                else:
                    menu.addAction(self._make(entry))
        self.refresh()

    def _make(self, cmd: Command) -> QAction:
        act = QAction(cmd.text, self.owner)
        if cmd.shortcuts:
            act.setShortcuts([QKeySequence(k) for k in cmd.shortcuts])
        if cmd.tip:
            act.setStatusTip(cmd.tip)
        if cmd.group is not None or cmd.checkable:
            act.setCheckable(True)
        if cmd.group is not None:
            act.setData(cmd.args[0])
            self.groups.setdefault(cmd.group, QActionGroup(self.owner)).addAction(act)
        handler = operator.attrgetter(cmd.handler)
        if cmd.checked_arg:
            act.triggered.connect(lambda checked: handler(self.owner)(*cmd.args, checked))
        else:
            act.triggered.connect(lambda _checked=False: handler(self.owner)(*cmd.args))
        self.by_key[cmd.key] = act
        self.commands[cmd.key] = cmd
        return act

    def refresh(self) -> None:
        for key, cmd in self.commands.items():
            if cmd.enabled_when is not None:
                self.by_key[key].setEnabled(self.predicates[cmd.enabled_when]())

    def check(self, group: str, data: object) -> None:
        """Check the action of ``group`` whose data is ``data``."""
        for act in self.groups[group].actions():
            act.setChecked(act.data() == data)

    def context_menu(self, parent: QMenu) -> QMenu:
        """The gallery's context menu, enabled for the photo it is about; the menus' own state comes back when it closes."""
        for entry in CONTEXT_MENU:
            if entry is None:
                parent.addSeparator()
                continue
            key, when = entry
            act = self.by_key[key]
            if when is not None:
                act.setEnabled(self.predicates[when]())
            parent.addAction(act)
        parent.aboutToHide.connect(self._after_context_menu)
        return parent

    def _after_context_menu(self) -> None:
        for entry in CONTEXT_MENU:
            if entry is not None and entry[1] is not None:
                act = self.by_key[entry[0]]
                cmd = self.commands[entry[0]]
                act.setEnabled(True if cmd.enabled_when is None else self.predicates[cmd.enabled_when]())
