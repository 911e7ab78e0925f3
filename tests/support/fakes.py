"""The one stand-in for the Classifier (worker, window and teaching tests): real decoding, a fixed answer, a log of calls.

It implements the worker's ClassifierLike in full, and what teaching needs of a backbone; a test that needs
another answer changes an attribute of the fake it was given, never the code under test. Qt-free.
"""

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np


class FakeClassifier:
    """Answers every photo with classes 0-4, its features (``pooled_features``) and its real dHash; ``gate`` (if
    given) holds the first photo until it is set.

    ``backend`` is the runtime asked for ("auto" runs as OpenVINO would), so a test can tell what reached it.
    """

    def __init__(self, weights, device, gate: threading.Event | None = None, backend: str = "auto",
                 precision: str = "fp32") -> None:
        from resnext_gui.core.devices import Device

        self.device = Device("cpu")
        self.labels = [f"class {i}" for i in range(1000)]
        self.source = SimpleNamespace(describe=lambda: f"fake weights {weights}", variant=None,
                                      path=Path(str(weights or "fake.pth")))
        self.backend = "openvino" if backend == "auto" else backend
        self.precision = precision
        self.note: str | None = None
        self.load_ms = 0.0
        self.calls: list[tuple[str, str]] = []  # (photo name, layer), in the order asked
        self.methods: list[str] = []  # the CAM method of each call of ``calls``
        self.threads: list[int] = []  # threading.get_ident() of every call that computes (classify, Score-CAM, faithfulness)
        # Score-CAM: ``score_total`` batches; ``score_done`` counts those computed. With ``score_hold`` given,
        # each batch after the first waits for it (a test cancels in between).
        self.score_total, self.score_done = 8, 0
        self.score_hold: threading.Event | None = None
        # faithfulness: ``faith_calls`` counts the scores begun, ``faith_passes`` the passes computed; with
        # ``faith_hold`` given, each pass waits for it once ``faith_in_pass`` says one has begun
        self.faith_calls: list[tuple[int, tuple[int, ...]]] = []  # (class index, map shape)
        self.faith_passes = 0
        self.faith_hold: threading.Event | None = None
        self.faith_in_pass = threading.Event()
        self.gate = gate
        self.busy = threading.Event()  # set once the first photo is being computed
        # what teaching reads of a backbone (core.train): its preprocessing and the arrays to fingerprint
        self.checkpoint = SimpleNamespace(state={"conv1.weight": np.arange(6, dtype=np.float32)}, sha256="0" * 64)
        self.resize, self.crop_size = 40, 32
        from resnext_gui.core.preprocess import Preprocessing

        self.preprocessing = Preprocessing(40, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # what the results library keys on
        self._projection: np.ndarray | None = None  # pooled_features' (fixed) projection, made once

    def classify(self, source, keep_image=False, layer=None, method=None):
        from resnext_gui.core.errors import ImageError
        from resnext_gui.core.prediction import Prediction, TopClass
        from resnext_gui.core.preprocess import load_and_prepare, source_name

        layer, method = layer or "layer4", method or "gradcam"
        if method == "scorecam":
            raise ValueError("Score-CAM is computed by score_cams, not classify")
        name = source_name(source)
        self.calls.append((Path(name).name, layer))
        self.methods.append(method)
        self.threads.append(threading.get_ident())
        self.busy.set()
        if self.gate is not None:
            self.gate.wait(60)
        try:
            item = load_and_prepare(source, self.preprocessing, False)
        except ImageError as exc:
            return Prediction(path=name, ok=False, error=str(exc))
        decoded = item.decoded
        w, h = decoded.original_size
        top = [TopClass(r + 1, r, self.labels[r], 0.5 / (r + 1)) for r in range(5)]
        side = 7 if layer == "layer4" else 14
        rng = np.random.default_rng(len(self.calls))
        cams = rng.random((5, side, side), dtype=np.float32)
        # as the Classifier: the last stage's Grad-CAM too when the maps asked for are another's (the library keeps it)
        kept = None if (layer, method) == ("layer4", "gradcam") else rng.random((5, 7, 7), dtype=np.float32)
        features = self.pooled_features([item])[0, 0].astype(np.float16)
        return Prediction(path=name, ok=True, top=top, cams=cams, layer=layer, method=method,
                          crop=(0.0, 0.0, float(w), float(h)), image_size=(w, h),
                          image=decoded.image if keep_image else None, last_stage_cams=kept,
                          features=features, dhash=item.dhash)

    def classify_many(self, sources, batch_size=1, keep_images=False, cancelled=None):
        """What core.similar_photos asks of a Classifier: each answer in input order, one ``classify`` each."""
        for source in sources:
            if cancelled is not None and cancelled():
                return
            yield self.classify(source, keep_image=keep_images)

    # ---- the slow explanations of the photo shown ----
    def score_cams(self, item, classes, layer="layer4", progress=None, cancelled=None):
        from resnext_gui.core.errors import Cancelled

        self.threads.append(threading.get_ident())
        for i in range(self.score_total):
            if i and self.score_hold is not None:
                self.score_hold.wait(60)
            if cancelled is not None and cancelled():
                raise Cancelled("Score-CAM was cancelled")
            self.score_done += 1
            if progress is not None:
                progress(i + 1, self.score_total)
        side = 7 if layer == "layer4" else 14
        return np.random.default_rng(self.score_done).random((len(classes), side, side), dtype=np.float32)

    def faithfulness_passes(self, item, class_index, cam):
        self.faith_calls.append((int(class_index), tuple(np.shape(cam))))
        return self._faith_passes(int(class_index))

    def _faith_passes(self, class_index):
        from resnext_gui.core.faithfulness import PASSES, Faithfulness

        for done in range(1, PASSES + 1):
            self.threads.append(threading.get_ident())
            self.faith_in_pass.set()
            if self.faith_hold is not None:
                self.faith_hold.wait(60)
            self.faith_passes += 1
            yield done
        return Faithfulness(deletion_auc=0.1, insertion_auc=0.7, random_deletion_auc=0.3, random_insertion_auc=0.4,
                            prob=0.5, prob_hidden=0.05, random_prob_hidden=0.4, class_index=class_index)

    # ---- teaching (and the slow explanations): features a fixed projection of the pixels ----
    def prepare(self, source):
        from resnext_gui.core.preprocess import load_and_prepare

        return load_and_prepare(source, self.preprocessing, True)

    def pooled_features(self, items):
        """(N, 2, 2048): a fixed random projection of the model's input, rectified (all positive, as pooled
        activations are), and its mirror; a photo's edited copies get features near its own."""
        x = np.stack([i.tensor for i in items]).reshape(len(items), -1)
        if self._projection is None or self._projection.shape[0] != x.shape[1]:
            self._projection = np.random.default_rng(0).standard_normal((x.shape[1], 2048)).astype(np.float32)
        f = np.maximum(x @ self._projection, 0)
        return np.stack([f, f[:, ::-1]], 1)
