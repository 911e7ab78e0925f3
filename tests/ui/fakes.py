"""A stand-in for the Classifier in worker and window tests: real decoding, a fixed answer, a log of every call."""

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np


class FakeClassifier:
    """Answers every photo with classes 0-4; ``gate`` (if given) holds the first photo until it is set."""

    def __init__(self, weights, device, gate: threading.Event | None = None) -> None:
        import torch

        self.device = torch.device("cpu")
        self.labels = [f"class {i}" for i in range(1000)]
        self.source = SimpleNamespace(describe=lambda: f"fake weights {weights}", variant=None,
                                      path=Path(str(weights or "fake.pth")))
        self.load_ms = 0.0
        self.calls: list[tuple[str, str]] = []  # (photo name, layer), in the order asked
        self.gate = gate
        self.busy = threading.Event()  # set once the first photo is being computed

    def classify(self, source, keep_image=False, layer="layer4"):
        from resnext_gui.core.classifier import Prediction, TopClass
        from resnext_gui.core.errors import ImageError
        from resnext_gui.core.preprocess import load_image, source_name

        name = source_name(source)
        self.calls.append((Path(name).name, layer))
        self.busy.set()
        if self.gate is not None:
            self.gate.wait(60)
        try:
            decoded = load_image(source)
        except ImageError as exc:
            return Prediction(path=name, ok=False, error=str(exc))
        w, h = decoded.original_size
        top = [TopClass(r + 1, r, self.labels[r], 0.5 / (r + 1)) for r in range(5)]
        side = 7 if layer == "layer4" else 14
        cams = np.random.default_rng(len(self.calls)).random((5, side, side), dtype=np.float32)
        return Prediction(path=name, ok=True, top=top, cams=cams, layer=layer, crop=(0.0, 0.0, float(w), float(h)),
                          image_size=(w, h), image=decoded.image if keep_image else None)


class FakeFactory:
    """The Worker's classifier_factory: remembers the FakeClassifier it made."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.made: list[FakeClassifier] = []
        self.options: list[dict] = []  # backend, precision and progress the worker asked for, per model made

    def __call__(self, weights, device, **options):
        clf = FakeClassifier(weights, device, self.gate)
        self.made.append(clf)
        self.options.append(options)
        return clf


class FakeTeachable(FakeClassifier):
    """A FakeClassifier that can also be taught: real decoding, features a fixed projection of the pixels."""

    def __init__(self, weights, device, gate: threading.Event | None = None) -> None:
        import torch

        super().__init__(weights, device, gate)
        self.loaded = SimpleNamespace(model=torch.nn.Linear(2, 2))
        self.resize, self.crop_size, self.precision = 40, 32, "fp32"

    def prepare(self, source):
        from resnext_gui.core.preprocess import Preprocessing, load_and_prepare

        return load_and_prepare(source, Preprocessing(40, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), True)

    def pooled_features(self, items):
        import numpy as np
        import torch

        x = torch.from_numpy(np.stack([i.tensor for i in items])).flatten(1)
        w = torch.randn(x.shape[1], 2048, generator=torch.Generator().manual_seed(0))
        f = torch.relu(x @ w)
        return torch.stack([f, f.flip(1)], 1).numpy()


class TeachableFactory(FakeFactory):
    def __call__(self, weights, device):
        clf = FakeTeachable(weights, device, self.gate)
        self.made.append(clf)
        return clf
