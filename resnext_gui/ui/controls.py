"""The control panel beside the photo: top 5, Show, opacity, colour map, legend, CAM method and layer, Stop and Clear."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSlider, QVBoxLayout, QWidget

from ..core.cam import METHOD_NAMES, METHODS
from ..core.colormap import COLORMAPS
from ..core.kinds import LAYERS as LAYER_KEYS
from ..core.kinds import METHODS as METHOD_KEYS
from ..core.kinds import Layer, Method, choice
from .image_view import MODES
from .legend import HeatmapLegend
from .top5 import Top5Panel

if TYPE_CHECKING:
    from ..core.prediction import TopClass

LAYERS: dict[Layer, str] = {"layer4": "Last stage (7×7, default)", "layer3": "Stage before (14×14, finer)",
                            "layer2": "Two stages before (28×28, finest)"}
LAYER_SIZES: dict[Layer, str] = {"layer4": "7×7", "layer3": "14×14", "layer2": "28×28"}  # as the panel's heading says it
METHOD_TIPS: dict[Method, str] = {
    "gradcam": "Grad-CAM: the stage's activations weighted by the class's average gradient (the default)",
    "hirescam": "HiResCAM: activations times the gradient at each position, so the map shows what the score used",
    "gradcam++": "Grad-CAM++: higher-order gradient weights; often covers several objects of the class better",
    "xgradcam": "XGrad-CAM: gradients weighted by the activations themselves",
    "layercam": "Layer-CAM: the positive gradient at each position; fine detail at the earlier stages",
    "eigencam": "Eigen-CAM: the activations' main component; the same map for every class",
    "scorecam": "Score-CAM: each activation map, used as a mask on the photo, weighted by the class's score "
                "on it. Slow (a forward pass per map): computed for the photo shown only, with progress and Cancel",
}
MODE_BUTTONS = (("Original", "The photo alone (Ctrl+1)"), ("Overlay", "The heatmap over the photo (Ctrl+2)"),
                ("Heatmap", "The heatmap alone (Ctrl+3)"))


def layer_name(layer: Layer) -> str:
    """How the panel names a layer in running text: "last stage", "stage before"."""
    return LAYERS.get(layer, layer).split(" (")[0].lower()


class ControlPanel(QScrollArea):
    """The panel's widgets, and what the user changed in them (the window decides what follows).

    The legend follows the colour map, the opacity and the mode here; the rest goes out as signals.
    """

    modeChosen = Signal(str)  # a Show button
    opacityChanged = Signal(float)  # 0..1
    colormapChanged = Signal(str)
    layerChosen = Signal(str)  # "layer4" | "layer3" | "layer2"
    methodChosen = Signal(str)  # one of core.cam.METHODS
    classChosen = Signal(int)  # rank in the top 5, 1-based
    stopClicked = Signal()
    clearClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        side = QWidget(self)
        s = QVBoxLayout(side)
        s.setContentsMargins(6, 0, 0, 0)
        self.top5 = Top5Panel(side)
        s.addWidget(self.top5)
        s.addWidget(QLabel("Show"))
        modes = QHBoxLayout()
        self.mode_buttons: list[QPushButton] = []  # no QButtonGroup: Tab reaches each one; show_mode checks one
        for key, (text, tip) in zip(MODES, MODE_BUTTONS):
            btn = QPushButton(text)
            btn.setCheckable(True)
            btn.setToolTip(tip)
            btn.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # reachable with Tab on every platform
            btn.setProperty("mode", key)
            btn.setMinimumWidth(btn.fontMetrics().horizontalAdvance(text) + 16)  # not the style's 80: a narrow panel
            btn.clicked.connect(lambda _=False, k=key: self.modeChosen.emit(k))
            self.mode_buttons.append(btn)
            modes.addWidget(btn)
        s.addLayout(modes)
        s.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setAccessibleName("Heatmap opacity")
        self.opacity.setToolTip("How strongly the heatmap covers the photo in Overlay")
        s.addWidget(self.opacity)
        s.addWidget(QLabel("Colour map"))
        self.cmap = QComboBox()
        self.cmap.addItems(list(COLORMAPS))
        self.cmap.setToolTip("The colours of the heatmap, from low to high attention")
        s.addWidget(self.cmap)
        self.legend = HeatmapLegend(side)
        s.addWidget(self.legend)
        s.addWidget(QLabel("Heatmap method (all photos)"))
        self.method_box = QComboBox()
        for key in METHODS:
            self.method_box.addItem(METHOD_NAMES[key], key)
            self.method_box.setItemData(self.method_box.count() - 1, METHOD_TIPS.get(key, ""), Qt.ItemDataRole.ToolTipRole)
        self.method_box.setToolTip("How the heatmap is computed; each photo is recomputed with it when you show it")
        self.method_box.setAccessibleName("Heatmap method")
        s.addWidget(self.method_box)
        s.addWidget(QLabel("Heatmap layer (all photos)"))
        self.layer_box = QComboBox()
        for key, text in LAYERS.items():
            self.layer_box.addItem(text, key)
        self.layer_box.setToolTip("Applies to every photo: each one is recomputed with this layer when you show it")
        self.layer_box.setAccessibleName("Heatmap layer")
        s.addWidget(self.layer_box)
        buttons = QHBoxLayout()
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop: drop the photos still waiting (Esc)")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Stop and remove every photo from the gallery")
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.clear_button)
        s.addLayout(buttons)
        s.addStretch(1)
        # as narrow as the panel can be with every choice's text shown whole (the layer's is the longest)
        side.setMinimumWidth(max(box.sizeHint().width() for box in (self.cmap, self.method_box, self.layer_box))
                             + s.contentsMargins().left())
        # on a small or HiDPI screen the controls scroll rather than push the window
        self.setWidget(side)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # not a Tab stop of its own (it had no way to show it had the keyboard): Tab goes to its controls, and it
        # scrolls to the one that has the keyboard
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # never narrower than what the panel's rows need (a row cut at the right would hide a button)
        self.setMinimumWidth(max(side.minimumWidth(), side.minimumSizeHint().width())
                             + self.verticalScrollBar().sizeHint().width())

        self.opacity.valueChanged.connect(self._on_opacity)
        self.cmap.currentTextChanged.connect(self.legend.set_colormap)
        self.cmap.currentTextChanged.connect(self.colormapChanged)
        self.layer_box.currentIndexChanged.connect(lambda i: self.layerChosen.emit(self.layer))
        self.method_box.currentIndexChanged.connect(lambda i: self.methodChosen.emit(self.method))
        self.top5.classChosen.connect(self.classChosen)
        self.stop_button.clicked.connect(self.stopClicked)
        self.clear_button.clicked.connect(self.clearClicked)

    @property
    def layer(self) -> Layer:
        return choice(self.layer_box.currentData(), LAYER_KEYS)

    @property
    def method(self) -> Method:
        return choice(self.method_box.currentData(), METHOD_KEYS)

    def set_method(self, method: Method) -> None:
        """Show ``method`` as chosen without asking for anything (a restored setting)."""
        self.method_box.blockSignals(True)
        self.method_box.setCurrentIndex(max(0, self.method_box.findData(method)))
        self.method_box.blockSignals(False)

    def offer_layers(self, offered: Collection[Layer], why: str = "") -> Layer:
        """Only the layers in ``offered`` can be chosen (the others are greyed, ``why`` as their tooltip); a
        chosen layer no longer offered becomes the first one offered, without asking. Returns the layer now chosen."""
        model = self.layer_box.model()
        assert isinstance(model, QStandardItemModel)  # a plain QComboBox's own model
        for i in range(self.layer_box.count()):
            item = model.item(i)
            item.setEnabled(item.data(Qt.ItemDataRole.UserRole) in offered)
            item.setToolTip("" if item.isEnabled() else why)
        if self.layer not in offered:
            first = next((i for i in range(self.layer_box.count()) if model.item(i).isEnabled()), 0)
            self.layer_box.blockSignals(True)
            self.layer_box.setCurrentIndex(first)
            self.layer_box.blockSignals(False)
        return self.layer

    def _on_opacity(self, value: int) -> None:
        self.legend.set_opacity(value / 100)
        self.opacityChanged.emit(value / 100)

    def show_mode(self, mode: str) -> None:
        """Check the button of ``mode``; the opacity only means something over the photo."""
        for btn in self.mode_buttons:
            btn.setChecked(btn.property("mode") == mode)
        self.opacity.setEnabled(mode == "overlay")
        self.legend.set_mode(mode)

    def set_colormap(self, name: str) -> None:
        self.cmap.setCurrentText(name)
        self.colormapChanged.emit(self.cmap.currentText())  # also when it was already the current one

    def set_layer(self, layer: Layer) -> None:
        """Show ``layer`` as chosen without asking for anything (a restored setting)."""
        self.layer_box.blockSignals(True)
        self.layer_box.setCurrentIndex(max(0, self.layer_box.findData(layer)))
        self.layer_box.blockSignals(False)

    def show_top(self, top: list[TopClass] | None = None, rank: int = 1, message: str = "", title: str = "Top 5") -> None:
        """The top-5 list and its heading (empty with the plain heading: nothing classified to show)."""
        self.top5.set_top(top or [], rank, message=message)
        self.top5.set_title(title)
        self.top5.title.setToolTip("")
