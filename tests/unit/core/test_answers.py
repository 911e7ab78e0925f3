"""Answers remembered (core/answers.py): an answer of any layer or method is kept with its last stage's Grad-CAM,
and a gallery's answers are read back together."""

from types import SimpleNamespace

import numpy as np

from resnext_gui.core.answers import KnownAnswers
from resnext_gui.core.library import Library
from resnext_gui.core.prediction import Prediction, TopClass
from resnext_gui.core.preprocess import Preprocessing


def model():
    return SimpleNamespace(checkpoint=SimpleNamespace(sha256="ab" * 32), preprocessing=Preprocessing(232, 224), topk=3)


def answer(path, layer="layer4", method="gradcam", seed=0):
    rng = np.random.default_rng(seed)
    top = [TopClass(i + 1, 100 + i, label, p) for i, (label, p) in enumerate(zip(("tabby", "tiger cat", "lynx"),
                                                                                (0.6, 0.3, 0.1)))]
    side = {"layer4": 7, "layer3": 14, "layer2": 28}[layer]
    kept = None if (layer, method) == ("layer4", "gradcam") else rng.random((3, 7, 7), dtype=np.float32)
    return Prediction(path=str(path), ok=True, top=top, cams=rng.random((3, side, side), dtype=np.float32),
                      layer=layer, method=method, crop=(0.0, 0.0, 32.0, 24.0), image_size=(32, 24), ms=450.0,
                      last_stage_cams=kept)


def test_an_answer_of_another_layer_and_method_is_kept_with_its_last_stage_grad_cam(tmp_path):
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"cat" * 50)
    with Library(tmp_path / "lib.sqlite3") as lib:
        answers = KnownAnswers.of(model(), lib)
        pred = answer(photo, "layer2", "layercam")
        record = {**pred.to_record(), "faithfulness": {"method": "layercam", "layer": "layer2"}}
        answers.keep(photo, pred, record)
        assert answers.lookup(photo, "layer2", "layercam") is None  # those maps are not what it keeps
        entry = answers.lookup(photo)
    assert entry is not None and entry.maps.shape == (3, 7, 7)
    assert np.abs(entry.maps - pred.last_stage_cams).max() <= 0.5 / 255 + 1e-6
    assert "cam_method" not in entry.record and "faithfulness" not in entry.record  # they told of the other maps
    assert entry.record["ms"] == 450.0 and entry.top[0]["label"] == "tabby"


def test_a_gallery_is_looked_up_in_order_with_the_unknown_as_none(tmp_path):
    photos = []
    for i in range(5):
        photos.append(tmp_path / f"p{i}.jpg")
        photos[-1].write_bytes(bytes([i]) * 64)
    with Library(tmp_path / "lib.sqlite3") as lib:
        answers = KnownAnswers.of(model(), lib)
        for p in photos[:3]:
            answers.keep(p, answer(p))
        got = answers.lookup_many([str(p) for p in photos])
        assert [e.path if e else None for e in got] == [str(p) for p in photos[:3]] + [None, None]
        assert KnownAnswers.of(model(), lib, lookups=False).lookup_many([str(photos[0])]) == [None]
