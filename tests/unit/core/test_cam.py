"""Grad-CAM: closed form = autograd path = an independent hook-based reference; maps land on the crop."""

import numpy as np
import pytest
import torch
from torchvision.models import resnext50_32x4d

from resnext_gui.core import cam, torch_cam
from resnext_gui.core.classifier import Classifier
from resnext_gui.core.colormap import colormap
from resnext_gui.core.model import forward_from, forward_to
from resnext_gui.core.overlay import cam_overlay


@pytest.fixture(scope="module", params=["openvino", "torch"])
def clf(checkpoint, request):
    """The Classifier with each runtime: OpenVINO's in-graph gradients and PyTorch's autograd alike."""
    return Classifier(checkpoint, device="cpu", backend=request.param)


@pytest.fixture(scope="module")
def model(checkpoint):
    """torchvision's network with the checkpoint's weights: the reference."""
    return Classifier(checkpoint, device="cpu", backend="torch").runtime.model


@pytest.fixture(scope="module")
def batch(clf, photos):
    return torch.from_numpy(np.stack([clf.prepare(photos[n]).tensor for n in ("chelsea", "astronaut")]))


def reference_gradcam(checkpoint, x, layer, classes):
    """Textbook Grad-CAM on a fresh torchvision model: forward hook for A, tensor hook for dy/dA."""
    model = resnext50_32x4d(weights=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    maps = []
    for i in range(x.shape[0]):
        per_image = []
        for c in classes[i].tolist():
            store = {}

            def keep(_m, _inp, out, store=store):
                store["A"] = out
                out.register_hook(lambda g: store.__setitem__("G", g))

            handle = getattr(model, layer).register_forward_hook(keep)
            logits = model(x[i : i + 1])
            handle.remove()
            model.zero_grad()
            logits[0, c].backward()
            alpha = store["G"][0].mean(dim=(1, 2))
            m = torch.relu((alpha[:, None, None] * store["A"][0]).sum(0)).detach()
            m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else torch.zeros_like(m)
            per_image.append(m)
        maps.append(torch.stack(per_image))
    return torch.stack(maps)


def _corr(a, b):
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_numpy_closed_form_equals_autograd_grad_cam_on_last_stage(model, batch):
    with torch.no_grad():
        feats = forward_to(model, batch, "layer4")
        classes = forward_from(model, feats, "layer4").topk(5, dim=1).indices
    fast = cam.last_stage_cams(feats.numpy(), model.fc.weight.detach().numpy(), classes.numpy())
    general = torch_cam.autograd_cams(lambda a: forward_from(model, a, "layer4"), feats, classes).numpy()
    assert isinstance(fast, np.ndarray) and fast.dtype == np.float32 and fast.shape == (2, 5, 7, 7)
    assert np.allclose(fast, general, atol=1e-5, rtol=0)
    for i in range(2):
        for k in range(5):
            if general[i, k].max() > 0:
                assert _corr(fast[i, k], general[i, k]) >= 0.999
    assert not np.allclose(fast[:, 0], fast[:, 1])  # distinct classes, distinct maps


def test_the_two_normalisations_agree():
    raw = np.random.default_rng(0).normal(size=(3, 4, 7, 7)).astype(np.float32)
    raw[0, 0] = 2.0  # a flat map
    raw[1, 1] = -1.0  # nothing positive
    got = cam.normalize_maps(raw)
    assert np.array_equal(got, torch_cam.normalize_maps(torch.from_numpy(raw)).numpy())
    assert got.dtype == np.float32 and not got[0, 0].any() and not got[1, 1].any()


@pytest.mark.slow
@pytest.mark.parametrize("layer,side", [("layer4", 7), ("layer3", 14), ("layer2", 28)])
def test_engine_maps_equal_independent_reference(clf, model, checkpoint, batch, photos, layer, side):
    with torch.no_grad():
        classes = model(batch).topk(5, dim=1).indices
    preds = clf.predict([clf.prepare(photos[n]) for n in ("chelsea", "astronaut")], layer)
    got_classes = torch.tensor([[t.index for t in p.top] for p in preds])
    # the runners-up are near-ties (the fitted head puts 99% on the photo's class): their order is float noise
    assert torch.equal(got_classes[:, 0], classes[:, 0])
    ref = reference_gradcam(checkpoint, batch, layer, got_classes)
    maps = torch.from_numpy(np.stack([p.cams for p in preds]))
    assert maps.shape == (2, 5, side, side)
    assert torch.allclose(maps, ref, atol=1e-3, rtol=0)


def test_all_five_maps_come_from_one_forward_pass(clf, photos):
    calls = []
    runtime = clf.runtime  # every pass of either runtime goes through infer or gradients: both are counted
    real_infer, real_gradients = runtime.infer, runtime.gradients
    runtime.infer = lambda batch: (calls.append("infer"), real_infer(batch))[1]
    runtime.gradients = lambda *args: (calls.append("gradients"), real_gradients(*args))[1]
    try:
        pred = clf.classify(photos["chelsea"])
    finally:
        del runtime.infer, runtime.gradients
    assert calls == ["infer"] and pred.cams.shape == (5, 7, 7)
    assert not np.allclose(pred.cams[0], pred.cams[1])  # distinct classes, distinct maps


def test_normalisation():
    raw = np.array([[[-1.0, 0.0], [2.0, 4.0]]], np.float32)
    assert cam.normalize_maps(raw).tolist() == [[[0.0, 0.0], [0.5, 1.0]]]
    for flat in (np.zeros((1, 3, 3)), -np.ones((1, 3, 3)), np.full((1, 3, 3), 2.0)):
        out = cam.normalize_maps(flat)
        assert np.array_equal(out, np.zeros_like(flat)) and not np.isnan(out).any()


def test_colormaps_are_lookup_tables():
    for name in ("jet", "turbo"):
        lut = colormap(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
        assert lut[32, 2] > lut[32, 0] and lut[-1, 0] > lut[-1, 2]  # from blue to red
    with pytest.raises(ValueError):
        colormap("rainbow-unicorn")


def test_overlay_covers_exactly_the_crop_rectangle():
    photo = np.full((300, 400, 3), 100, np.uint8)
    rect = (50.0, 30.0, 250.0, 230.0)
    out = cam.overlay(photo, np.ones((7, 7), np.float32), rect, "jet", 0.6)
    changed = np.any(out != photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (50, 30, 250, 230)
    assert changed[30:230, 50:250].all()


def test_prediction_overlay_uses_crop_of_full_photo(clf, big_jpeg):
    pred = clf.classify(big_jpeg, keep_image=True)
    assert pred.image_size == (4000, 3000)
    left, top, right, bottom = pred.crop
    # landscape 4:3: the crop is the central 3000x3000 square (less the 232->224 border)
    assert right - left == pytest.approx(3000 * 224 / 232, rel=2e-3)
    assert (left + right) / 2 == pytest.approx(2000, abs=15) and (top + bottom) / 2 == pytest.approx(1500, abs=15)
    out = cam_overlay(pred, rank=2, cmap="turbo", opacity=1.0)
    photo = np.asarray(pred.image)
    changed = np.any(out != photo, axis=2)
    sx = photo.shape[1] / 4000
    assert not changed[:, : int(left * sx) - 1].any() and not changed[:, int(right * sx) + 1 :].any()


@pytest.mark.parametrize("shape, size", [((7, 7), (224, 224)), ((14, 14), (224, 224)), ((28, 28), (301, 187)),
                                         ((7, 7), (1, 1)), ((1, 1), (5, 3)), ((7, 7), (3, 5)), ((5, 9), (9, 5))])
def test_upsample_is_pillows_bilinear_resize(shape, size):
    cam_mod_upsample = cam.upsample
    """The overlay's and the window's maps: the matrix form gives Pillow's numbers (up- and downscaling)."""
    from PIL import Image

    rng = np.random.default_rng(sum(shape) + sum(size))
    raw = rng.random(shape, dtype=np.float32)
    want = np.asarray(Image.fromarray(raw).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    got = cam_mod_upsample(raw, size)
    assert got.shape == want.shape == (size[1], size[0]) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    several = cam_mod_upsample(np.stack([raw, raw[::-1]]), size)  # a stack of maps: each one alone
    np.testing.assert_array_equal(several[0], got)
    np.testing.assert_allclose(several[1], np.asarray(Image.fromarray(np.ascontiguousarray(raw[::-1])).resize(
        size, Image.Resampling.BILINEAR)), rtol=0, atol=2e-6)
