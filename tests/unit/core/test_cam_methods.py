"""The CAM methods against pytorch-grad-cam 1.5.7 (a test-only oracle), what they cost in passes, the faithfulness
figures against a plain reference, and the sanity check of Adebayo et al. (2018)."""

import hashlib
import re

import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchvision.models import resnext50_32x4d

from resnext_gui.core import cam, faithfulness
from resnext_gui.core.classifier import Classifier
from resnext_gui.core.errors import Cancelled

# Photos whose blurred copy (insertion's start) loses much of the fitted class: on coffee and rocket the test model
# still gives 99 % blurred, so their insertion curves are flat and measure nothing
PHOTOS = ("chelsea", "astronaut")
RANKS = 3  # the oracle runs one backward pass per photo and class: the top 3 of each photo
SIDES = {"layer4": 7, "layer3": 14, "layer2": 28}
ORACLES = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM,
           "layercam": LayerCAM, "eigencam": EigenCAM}


class Passes:
    """Counts the runtime's passes (every pass of either runtime is an ``infer`` or a ``gradients`` call) and,
    with ``memo``, answers a repeated call from the first answer (so one test can ask for many methods)."""

    def __init__(self, runtime, memo: bool = False) -> None:
        self.runtime, self.memo, self.calls, self.answers = runtime, memo, [], {}
        self.real = runtime.infer, runtime.gradients

    def _call(self, name, fn, *args):
        self.calls.append(name)
        key = (name, *(hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest() if isinstance(a, np.ndarray) else a
                       for a in args))
        if not self.memo:
            return fn(*args)
        if key not in self.answers:
            self.answers[key] = fn(*args)
        return self.answers[key]

    def __enter__(self):
        self.runtime.infer = lambda batch: self._call("infer", self.real[0], batch)
        self.runtime.gradients = lambda *args: self._call("gradients", self.real[1], *args)
        return self

    def __exit__(self, *exc):
        del self.runtime.infer, self.runtime.gradients


def _corr(a, b):
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def _ranks(x):
    return np.argsort(np.argsort(np.ravel(x), kind="stable"), kind="stable").astype(np.float64)


def _spearman(a, b):
    return _corr(_ranks(a), _ranks(b))


@pytest.fixture(scope="module")
def clf(checkpoint):
    """The app's classifier on the PyTorch runtime (no compile: the cheapest to start in a test)."""
    return Classifier(checkpoint, device="cpu", backend="torch")


@pytest.fixture(scope="module")
def items(clf, photos):
    return [clf.prepare(photos[name]) for name in PHOTOS]


@pytest.fixture(scope="module")
def oracle_model(checkpoint):
    """torchvision's own network with the test checkpoint (its head fitted to the photos): the oracle's model."""
    model = resnext50_32x4d(weights=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def ours(clf, items):
    """Every one-pass method at every stage for both photos through Classifier.predict, each map's own path;
    repeated passes of the same batch are answered once (Passes with memo)."""
    with Passes(clf.runtime, memo=True):
        return {(m, layer): clf.predict(items, layer, m) for layer in cam.LAYERS for m in cam.ONE_PASS}


def oracle_maps(model, x, classes):
    """pytorch-grad-cam's maps of each method at each stage, at the stage's own resolution: {(method, layer): (P, k, s, s)}.

    A fair comparison: pytorch-grad-cam computes the raw map, ReLU, scales it to [0, 1] and resizes it to the input
    (224x224), then scales again. Here each CAM object reports the stage's own size as its target size (its
    ``get_target_width_height``), so its resize is the identity and its output is the ReLU'd raw map min-max scaled
    at the stage's resolution, as the app's, with no interpolation between the two. Every other step is the
    library's own: its hooks record the activations and gradients, and ``compute_cam_per_layer`` and
    ``aggregate_multi_layers`` turn them into maps. The forward and backward pass, the same for every method
    (``BaseCAM.forward``: the sum of the targets' logits over the batch, one backward), runs once for all 18
    objects, each recording it through its own hooks; photo p's class j is batch row p * k + j.
    """
    p, k = classes.shape
    xs = x.repeat_interleave(k, dim=0)
    targets = [ClassifierOutputTarget(int(c)) for c in classes.reshape(-1)]
    objects = {}
    for layer, side in SIDES.items():
        for method, kind in ORACLES.items():
            obj = kind(model, [getattr(model, layer)])
            obj.get_target_width_height = lambda _x, side=side: (side, side)
            objects[method, layer] = obj
    outputs = model(xs)
    model.zero_grad()
    sum(t(o) for t, o in zip(targets, outputs)).backward()
    out = {}
    for key, obj in objects.items():
        maps = obj.aggregate_multi_layers(obj.compute_cam_per_layer(xs, targets, False))
        out[key] = maps.reshape(p, k, *maps.shape[-2:])
        obj.activations_and_grads.release()
    model.zero_grad(set_to_none=True)
    return out


def test_every_one_pass_method_at_every_stage_matches_pytorch_grad_cam(ours, items, oracle_model):
    x = torch.from_numpy(np.stack([item.tensor for item in items]))
    classes = np.array([[t.index for t in pred.top[:RANKS]] for pred in ours["gradcam", "layer4"]])
    expected = oracle_maps(oracle_model, x, classes)
    for (method, layer), preds in ours.items():
        got = np.stack([pred.cams[:RANKS] for pred in preds])
        assert got.shape == expected[method, layer].shape == (len(PHOTOS), RANKS, SIDES[layer], SIDES[layer])
        assert got.dtype == np.float32 and got.min() >= 0 and got.max() <= 1
        assert all(pred.method == method and pred.layer == layer for pred in preds)
        for p in range(len(PHOTOS)):
            for j in range(RANKS):
                want = expected[method, layer][p, j]
                if np.ptp(want) < 1e-6:  # nothing positive: both flat
                    assert np.ptp(got[p, j]) < 1e-3, (method, layer, p, j)
                    continue
                c = _corr(got[p, j], want)
                assert c >= 0.99, f"{method} at {layer}, photo {PHOTOS[p]}, rank {j + 1}: correlation {c:.4f}"
                assert np.abs(got[p, j] - want).max() < 0.05, (method, layer, p, j)
    for layer in cam.LAYERS:  # eigencam is class-agnostic; the others are not
        assert all(np.array_equal(pred.cams[0], pred.cams[j]) for pred in ours["eigencam", layer] for j in range(5))
        assert not np.allclose(ours["layercam", layer][0].cams[0], ours["layercam", layer][0].cams[1])


def test_the_methods_are_not_all_the_same_map(ours):
    """HiResCAM equals Grad-CAM only where the gradient is the same at every position: at the last stage."""
    def maps(method, layer):
        return np.stack([pred.cams for pred in ours[method, layer]])

    assert np.allclose(maps("hirescam", "layer4"), maps("gradcam", "layer4"), atol=1e-6)
    assert not np.allclose(maps("hirescam", "layer3"), maps("gradcam", "layer3"), atol=1e-2)
    for method in ("gradcam++", "layercam", "eigencam"):
        assert not np.allclose(maps(method, "layer4"), maps("gradcam", "layer4"), atol=1e-2), method


def test_analytic_methods_cost_no_extra_pass(clf, items):
    for method in cam.ONE_PASS:  # the last stage: the one forward pass, for all five classes, no backward pass
        with Passes(clf.runtime) as passes:
            pred = clf.predict(items[:1], "layer4", method)[0]
        assert passes.calls == ["infer"], method
        assert pred.cams.shape == (5, 7, 7)
    with Passes(clf.runtime) as passes:  # an earlier stage: the same forward pass plus the stage's gradient pass
        pred = clf.predict(items[:1], "layer3", "gradcam++")[0]
    assert passes.calls == ["infer", "gradients"] and pred.cams.shape == (5, 14, 14)


def test_score_cam_is_not_a_one_pass_method(clf, items, photos):
    for call in (lambda: clf.predict(items, method="scorecam"), lambda: clf.classify(photos["chelsea"], method="scorecam")):
        with pytest.raises(ValueError, match="Score-CAM needs a forward pass per activation map"):
            call()
    with pytest.raises(ValueError, match=re.escape("unknown CAM method 'gradcam+'")):
        clf.predict(items, method="gradcam+")
    assert cam.method_layers("scorecam") == cam.method_layers("layercam") == cam.LAYERS


@pytest.mark.parametrize("side", [7, 14, 28])
def test_score_cam_masks_are_torch_upsampling(side):
    acts = np.random.default_rng(side).random((3, side, side), dtype=np.float32)
    acts[2] = 0.0  # a dead channel (all zero after the ReLU): an all-zero mask
    up = torch.nn.UpsamplingBilinear2d(size=(224, 224))(torch.from_numpy(acts)[None])[0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    want = ((up - lo) / (hi - lo + 1e-8)).numpy()
    got = cam.score_masks(acts, (224, 224))
    assert got.shape == (3, 224, 224) and np.allclose(got, want, atol=1e-5)
    assert not got[2].any()


def _subset(acts, n):
    """The ``n`` maps with the largest mean activation (the informative ones), in channel order."""
    return np.sort(np.argsort(-acts.mean(axis=(1, 2)), kind="stable")[:n])


@pytest.fixture(scope="module")
def score_subset(clf, items):
    """Score-CAM of the first photo's top class (and the next class index) over the 12 layer4 maps with the largest
    mean activation: (channels, class, maps, progress seen)."""
    feats = clf.features(items[:1])[0]
    chans = _subset(feats, 12)
    top = int(np.argmax(clf.runtime.infer(items[0].tensor[None])[1][0]))
    seen = []
    got = clf.score_cams(items[0], [top, top + 1], "layer4", progress=lambda d, t: seen.append((d, t)), channels=chans)
    return chans, top, got, seen


def test_score_cam_matches_pytorch_grad_cam_on_a_channel_subset(score_subset, items, oracle_model):
    """Score-CAM costs one forward pass per activation map (2048 at layer4), on both sides: too much for the suite.
    Both compute it here over the same 12 maps of layer4 (the ones with the largest mean activation): the
    oracle's own ScoreCAM weights (its masks, batches and softmax over the maps given) from its own hooked
    activations, against the app's ``score_cams(channels=...)``, for the top class of one photo."""
    item = items[0]
    x = torch.from_numpy(item.tensor[None])
    obj = ScoreCAM(oracle_model, [oracle_model.layer4])
    with torch.no_grad():
        logits = obj.activations_and_grads(x)
    acts = obj.activations_and_grads.activations[0].numpy()
    chans, top, got, seen = score_subset
    assert np.array_equal(chans, _subset(acts[0], 12)) and top == int(logits.argmax())
    targets = [ClassifierOutputTarget(top)]
    raw = obj.get_cam_image(x, oracle_model.layer4, targets, acts[:, chans], None, False)
    want = obj.aggregate_multi_layers([scale_cam_image(np.maximum(raw, 0), (7, 7))[:, None]])[0]
    obj.activations_and_grads.release()
    assert got.shape == (2, 7, 7) and seen == [(12, 12)]
    assert _corr(got[0], want) >= 0.99 and np.abs(got[0] - want).max() < 0.05
    assert not np.allclose(got[0], got[1])  # each class weighs the same masked passes its own way


@pytest.mark.parametrize("layer, side", [("layer3", 14), ("layer2", 28)])
def test_score_cam_before_the_last_stage_matches_pytorch_grad_cam(clf, items, oracle_model, layer, side):
    """The same comparison at the earlier stages Score-CAM is offered at: 12 maps each side, chosen from the
    oracle's own hooked activations (the largest mean activation), the same class."""
    item = items[0]
    x = torch.from_numpy(item.tensor[None])
    obj = ScoreCAM(oracle_model, [getattr(oracle_model, layer)])
    with torch.no_grad():
        logits = obj.activations_and_grads(x)
    acts = obj.activations_and_grads.activations[0].numpy()
    top = int(logits.argmax())
    chans = _subset(acts[0], 12)
    raw = obj.get_cam_image(x, getattr(oracle_model, layer), [ClassifierOutputTarget(top)], acts[:, chans], None, False)
    want = obj.aggregate_multi_layers([scale_cam_image(np.maximum(raw, 0), (side, side))[:, None]])[0]
    obj.activations_and_grads.release()
    got = clf.score_cams(item, [top], layer, channels=chans)
    assert got.shape == (1, side, side) and want.shape == (side, side)
    assert _corr(got[0], want) >= 0.99 and np.abs(got[0] - want).max() < 0.05


@pytest.fixture(scope="module")
def ov_clf(checkpoint):
    return Classifier(checkpoint, device="cpu", backend="openvino")


def test_score_cam_on_openvino_agrees_with_torch_progress_and_cancel(ov_clf, score_subset, items):
    chans, top, ref, _ = score_subset
    seen = []
    got = ov_clf.score_cams(items[0], [top, top + 1], "layer4", progress=lambda d, t: seen.append((d, t)),
                            channels=chans, batch_size=8)
    assert seen == [(8, 12), (12, 12)]  # one report per batch of masked inputs
    assert all(_corr(got[j], ref[j]) >= 0.99 for j in range(2))
    with Passes(ov_clf.runtime) as passes, pytest.raises(Cancelled, match="Score-CAM was cancelled"):
        ov_clf.score_cams(items[0], [top], "layer4", cancelled=lambda: len(passes.calls) >= 2, channels=chans, batch_size=2)
    assert passes.calls == ["infer", "infer"]  # the activations, one batch, then stopped before the next


def test_score_cam_before_the_last_stage(clf, items):
    """At layer3 the activations come from the runtime's gradient pass (its gradients unused), then the masked passes."""
    with Passes(clf.runtime) as passes:
        got = clf.score_cams(items[0], [281, 967], "layer3", channels=range(0, 1024, 128))
    assert passes.calls == ["gradients", "infer"] and got.shape == (2, 14, 14)
    assert got.max() == 1.0 and got.min() == 0.0


# ---- faithfulness ----

def reference_curves(sal_map, x, probability, steps, eight_bits=True):
    """Deletion and insertion, written out plainly: the map taken at 8 bits (as the results library keeps it;
    the random map is taken as drawn), its pixels ranked by Python's (stable) sort, pixels switched one at a
    time, the blur as one 11x11 Gaussian convolution (edges mirrored, torch), areas by numpy's trapezoid rule.
    ``probability`` gives the class's probability of each image of a batch."""
    _, h, w = x.shape
    if eight_bits:
        stored = np.clip(np.rint(np.asarray(sal_map, np.float32) * np.float32(255)), 0, 255).astype(np.uint8)
        sal_map = (stored / 255).astype(np.float32)
    sal = cam.upsample(sal_map, (w, h)).ravel()  # the same bilinear upsampling the overlay draws
    order = sorted(range(h * w), key=lambda i: -float(sal[i]))
    g = np.exp(-0.5 * (np.arange(-5, 6) / 5.0) ** 2)
    kernel = torch.from_numpy(np.outer(g, g) / np.outer(g, g).sum()).float()
    padded = torch.nn.functional.pad(x[:, None], (5, 5, 5, 5), mode="reflect")
    blurred = torch.nn.functional.conv2d(padded, kernel[None, None])[:, 0]
    curves = {}
    for name, start, source in (("deletion", x.clone(), torch.zeros_like(x)), ("insertion", blurred.clone(), x)):
        image, done, images = start, 0, []
        for i in range(steps + 1):
            target = round(i * h * w / steps)
            while done < target:
                r, c = divmod(order[done], w)
                image[:, r, c] = source[:, r, c]
                done += 1
            images.append(image.clone())
        curves[name] = [float(p) for p in probability(torch.stack(images))]
    xs = np.linspace(0, 1, steps + 1)
    return curves, {name: float(np.trapezoid(y, xs)) for name, y in curves.items()}


@pytest.fixture(scope="module")
def figures(ov_clf, items, ours):
    """The faithfulness figures (5 steps) of each photo's top-class Grad-CAM at layer4, with the progress seen
    (on OpenVINO, the CPU's runtime: its batches are the cheaper here)."""
    out = []
    for item, pred in zip(items, ours["gradcam", "layer4"]):
        seen = []
        f = ov_clf.faithfulness(item, pred.top[0].index, pred.cams[0], steps=5, progress=lambda d, t, seen=seen: seen.append((d, t)))
        out.append((f, seen))
    return out


def test_faithfulness_matches_a_plain_reference(figures, items, ours, oracle_model):
    pred, (got, seen) = ours["gradcam", "layer4"][0], figures[0]
    cls = pred.top[0].index
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # four batched passes, one per curve

    def probability(batch):
        with torch.no_grad():
            return torch.softmax(oracle_model(batch).double(), dim=1)[:, cls].numpy()

    curves, areas = reference_curves(pred.cams[0], torch.from_numpy(items[0].tensor), probability, 5)
    assert np.allclose(got.deletion, curves["deletion"], atol=2e-4)
    assert np.allclose(got.insertion, curves["insertion"], atol=2e-4)
    assert got.deletion_auc == pytest.approx(areas["deletion"], abs=2e-4)
    assert got.insertion_auc == pytest.approx(areas["insertion"], abs=2e-4)
    assert got.prob == pytest.approx(pred.top[0].prob, abs=1e-4)
    assert got.prob_hidden == got.deletion[1]  # 20 % is the first of five steps
    record = got.to_record()
    assert record["class_index"] == cls and record["deletion_auc"] == round(got.deletion_auc, 4)


def test_the_random_map_figures_match_the_reference():
    """The random map's curves are the reference's for faithfulness.random_map(shape, seed); another seed, another
    map. A stand-in model (each image's mean brightness, as a 'probability') keeps this free of forward passes."""
    image = np.random.default_rng(3).normal(size=(3, 32, 32)).astype(np.float32) + 2.0
    cam_map = np.random.default_rng(4).random((4, 4), dtype=np.float32)

    def probability(batch):
        return np.asarray(batch, np.float64).mean(axis=(1, 2, 3))

    got = faithfulness.measure(image, cam_map, 7, probability, steps=10, seed=5)
    rand = faithfulness.random_map((4, 4), 5)
    assert not np.allclose(rand, faithfulness.random_map((4, 4), 6))
    for sal, dele, ins, areas in ((cam_map, got.deletion, got.insertion, (got.deletion_auc, got.insertion_auc)),
                                  (rand, got.random_deletion, got.random_insertion,
                                   (got.random_deletion_auc, got.random_insertion_auc))):
        curves, ref = reference_curves(sal, torch.from_numpy(image), probability, 10, eight_bits=sal is cam_map)
        assert np.allclose(dele, curves["deletion"], atol=1e-5) and np.allclose(ins, curves["insertion"], atol=1e-5)
        assert areas == pytest.approx((ref["deletion"], ref["insertion"]), abs=1e-6)
    assert got.random_prob_hidden == got.random_deletion[2] and got.class_index == 7


def test_trained_map_beats_a_random_map(figures):
    """On each fitted-head photo: hiding the map's pixels first hurts its class more than hiding a random map's,
    and revealing them first helps more (deletion area lower, insertion area higher)."""
    for f, _ in figures:
        assert f.insertion[0] < f.prob - 0.1  # the blurred start has lost some of the class: insertion can tell
        assert f.deletion_auc < f.random_deletion_auc, f
        assert f.insertion_auc > f.random_insertion_auc, f
        assert f.prob_hidden < f.prob


def test_faithfulness_sentence_cancel_and_bad_arguments(clf, items):
    f = faithfulness.Faithfulness(0.1, 0.8, 0.4, 0.5, prob=0.49, prob_hidden=0.04, random_prob_hidden=0.41)
    assert f.sentence("tabby") == "hiding the brightest 20 % of this map drops tabby from 49 % to 4 % (a random map: to 41 %)"
    up = faithfulness.Faithfulness(0.1, 0.8, 0.4, 0.5, prob=0.2, prob_hidden=0.3, random_prob_hidden=0.001)
    assert up.sentence("espresso") == ("hiding the brightest 20 % of this map raises espresso from 20 % to 30 % "
                                       "(a random map: to <1 %)")
    cam_map = np.zeros((7, 7), np.float32)
    with Passes(clf.runtime) as passes, pytest.raises(Cancelled):
        clf.faithfulness(items[0], 281, cam_map, steps=5, cancelled=lambda: True)
    assert passes.calls == []
    with Passes(clf.runtime, memo=True) as passes:  # a step at a time (the window's worker): one pass per step
        steps = clf.faithfulness_passes(items[0], 281, cam_map, steps=5)
        assert passes.calls == []
        assert [next(steps), len(passes.calls), next(steps), len(passes.calls)] == [1, 1, 2, 2]
        stepwise = faithfulness.finish(steps)
        assert len(passes.calls) == 4
        assert stepwise == clf.faithfulness(items[0], 281, cam_map, steps=5) and len(passes.calls) == 8
    with pytest.raises(ValueError, match="multiple of 1/3"):
        clf.faithfulness_passes(items[0], 281, cam_map, steps=3)  # refused before any pass is asked for
    with pytest.raises(ValueError, match="multiple of 1/3"):
        clf.faithfulness(items[0], 281, cam_map, steps=3)
    with pytest.raises(ValueError, match="not one of the model's 1000 classes"):
        clf.faithfulness(items[0], 1000, cam_map)
    with pytest.raises(ValueError, match="class indices"):
        clf.score_cams(items[0], [], "layer4")


def test_deletion_and_insertion_inputs():
    """The batches the curves are read from: step 0 is the input (deletion) or the blur (insertion), the last step
    the baseline (zeros: the mean colour) or the input, each step changing the next brightest pixels."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 8, 8)).astype(np.float32) + 3.0
    sal = np.arange(64, dtype=np.float32).reshape(8, 8)
    order = faithfulness.ranking(sal, (8, 8))
    assert order[0] == 63 and order[-1] == 0
    dele = faithfulness.deletion_batch(image, order, 4)
    ins = faithfulness.insertion_batch(image, order, 4)
    assert np.array_equal(dele[0], image) and not dele[4].any()
    assert np.array_equal(ins[4], image) and np.allclose(ins[0], faithfulness.blur(image))
    assert (dele[1].reshape(3, -1)[:, order[:16]] == 0).all() and (dele[1].reshape(3, -1)[:, order[16:]] != 0).all()
    assert faithfulness.auc([1.0, 1.0, 1.0]) == 1.0 and faithfulness.auc([1.0, 0.0]) == 0.5


# ---- the sanity check ----

@pytest.fixture(scope="module")
def randomized(checkpoint, tmp_path_factory):
    """The test model with its last stage and head re-initialised (torchvision's init, seed 1): Adebayo et al.'s
    cascading randomisation, from the top down to layer4."""
    torch.manual_seed(1)
    fresh = resnext50_32x4d(weights=None).state_dict()
    state = torch.load(checkpoint, weights_only=True)
    state.update({k: v for k, v in fresh.items() if k.startswith(("layer4.", "fc."))})
    path = tmp_path_factory.mktemp("sanity") / "randomized.pth"
    torch.save(state, path)
    return Classifier(path, device="cpu", backend="torch")


SANITY_BOUND = 0.6  # Adebayo et al.'s test: the mean Spearman rank correlation must fall below this
CHANGED = 0.05  # and every method's maps must change: a mean absolute difference above this (maps in [0, 1])
CLASS_METHODS = ("gradcam", "hirescam", "xgradcam")  # the methods whose maps follow the class's signed weights


def test_sanity_check_maps_change_when_the_last_stages_are_randomised(randomized, ours, items):
    """Adebayo et al. (2018): a map that survives randomising the weights it claims to explain explains nothing.

    For the trained model's classes (top 5 of both photos), after layer4 and the head are re-initialised every
    method's maps at layer4, and the gradient methods' at layer3, must change (mean absolute difference above
    CHANGED), and those of Grad-CAM, HiResCAM and XGrad-CAM must lose their rank order (mean Spearman correlation
    below SANITY_BOUND). Layer-CAM, Grad-CAM++ and Eigen-CAM keep more of it on this test model, whose backbone is
    torchvision's random init in both cases: they follow where the activations are strong (Layer-CAM and Grad-CAM++
    through the gradient's positive part, Eigen-CAM through the activations alone) more than what the class uses
    (the README says so). Eigen-CAM before layer4 depends only on the stages before it: there it is the same map;
    at layer4 see test_eigen_cam_fails_the_sanity_check.
    """
    classes = np.array([[t.index for t in pred.top] for pred in ours["gradcam", "layer4"]])
    batch = np.stack([item.tensor for item in items])
    feats = randomized.runtime.infer(batch)[0]
    acts, grads = randomized.runtime.gradients(batch, "layer3", randomized._fc_weight[classes])
    for layer in ("layer4", "layer3"):
        for method in cam.ONE_PASS:
            if layer == "layer4":
                got = cam.last_stage_cams(feats, randomized._fc_weight, classes, method)
            else:
                got = cam.stage_cams(method, acts, grads)
            trained = np.stack([pred.cams for pred in ours[method, layer]])
            if method == "eigencam" and layer != "layer4":
                assert np.allclose(got, trained, atol=1e-4)
                continue
            change = float(np.abs(got - trained).mean())
            if method == "eigencam":
                continue  # test_eigen_cam_fails_the_sanity_check
            assert change > CHANGED, f"{method} at {layer}: the maps barely changed ({change:.3f})"
            if method in CLASS_METHODS:
                rho = np.mean([_spearman(got[p, j], trained[p, j]) for p in range(len(PHOTOS)) for j in range(5)])
                assert rho < SANITY_BOUND, f"{method} at {layer}: mean rank correlation {rho:.2f} after randomisation"


@pytest.mark.xfail(reason="Score-CAM over the 12 most active maps fails the sanity check on the test model: the "
                          "most active maps of a re-initialised layer4 cover the same places, and a random head's "
                          "logits weigh them almost evenly (the README says so)")
def test_sanity_check_score_cam(randomized, score_subset, items):
    """Score-CAM over the randomised model's own 12 most active layer4 maps (the full 2048 passes are too many
    here), for the trained model's top class: the map should change."""
    _, top, trained, _ = score_subset
    chans = _subset(randomized.features(items[:1])[0], 12)
    got = randomized.score_cams(items[0], [top], "layer4", channels=chans)[0]
    assert float(np.abs(got - trained[0]).mean()) > CHANGED


@pytest.mark.xfail(reason="Eigen-CAM fails the sanity check on the test model: the first principal component of a "
                          "re-initialised layer4's activations draws the same map (it follows the photo's structure, "
                          "not the weights; the README warns of it)")
def test_eigen_cam_fails_the_sanity_check(randomized, ours, items):
    feats = randomized.runtime.infer(np.stack([item.tensor for item in items]))[0]
    got = cam.last_stage_cams(feats, randomized._fc_weight, np.zeros((len(items), 1), np.int64), "eigencam")[:, 0]
    trained = np.stack([pred.cams[0] for pred in ours["eigencam", "layer4"]])
    assert float(np.abs(got - trained).mean()) > CHANGED
