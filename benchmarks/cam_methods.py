"""CAM methods benchmark (`make bench`): all five classes' maps per method and stage, ours beside pytorch-grad-cam's.

Ours: what the app runs (the Classifier, OpenVINO on the CPU): one forward pass gives the top 5 and, at layer4,
every one-pass method's five maps in closed form; before layer4 one gradient pass more. pytorch-grad-cam 1.5.7
(the test extra's oracle) on torchvision's network with the same weights, used at its best for five maps: one
call on a batch of five copies of the photo, one target each (one forward and one backward pass of five images).
Score-CAM: ours runs the stage's masked passes once for all five classes; pytorch-grad-cam runs them per class
(its ScoreCAM loops over the targets), so its figure is one class's time, measured, times five.
Faithfulness of one map: ours is the deletion and insertion curves of the map and of a random map (4 batched
passes of 21 inputs); pytorch-grad-cam has no deletion/insertion curves, its nearest figure is ROADCombined
(most- and least-relevant-first at 9 percentiles, its noisy linear imputer), timed for the same map.
Prints a markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import cpu_features, describe_machine, make_photos, median_ms, torch_reference, weights_path  # noqa: E402

from resnext_gui.core.cam import LAYERS, METHOD_NAMES, ONE_PASS, STAGE_CHANNELS  # noqa: E402


def oracle_classes():
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

    return {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM,
            "layercam": LayerCAM, "eigencam": EigenCAM}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a check that it runs: one repeat, layer4 only, Score-CAM over 32 maps, no ROAD")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row, the median shown (default 5)")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else max(1, args.repeats)
    warmup = 0 if args.quick else 1
    layers = ("layer4",) if args.quick else LAYERS

    import torch
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from resnext_gui.core.classifier import Classifier

    warnings.filterwarnings("ignore", category=UserWarning)
    _, small = make_photos()
    weights, weights_desc = weights_path()
    clf = Classifier(weights, device="cpu")
    item = clf.prepare(small[1])  # chelsea
    model = torch_reference(clf.source).requires_grad_(True)  # as a user's model is: the library backpropagates
    x5 = torch.from_numpy(np.repeat(item.tensor[None], 5, axis=0))
    pred = clf.predict([item])[0]
    classes = [t.index for t in pred.top]
    targets = [ClassifierOutputTarget(c) for c in classes]
    print(f"# CAM methods: five classes' maps of one photo\n\n{describe_machine(clf.device)}; features {cpu_features()}; "
          f"ours on {clf.backend}; weights: {weights_desc}\n", flush=True)
    print("| method | stage | ours (ms) | pytorch-grad-cam (ms) | ratio |")
    print("|---|---|---:|---:|---:|")

    def line(name: str, layer: str, ours: float, theirs: float | None, note: str = "") -> None:
        ratio = f"{theirs / ours:.1f}x" if theirs else ""
        shown = f"{theirs:.1f}" if theirs else "—"
        print(f"| {name}{note} | {layer} | {ours:.1f} | {shown} | {ratio} |", flush=True)

    bare = median_ms(lambda: clf.runtime.infer(item.tensor[None]), repeats, warmup)
    line("forward pass alone (top 5, no map)", "—", bare, None)
    kinds = oracle_classes()
    for layer in layers:
        for method in ONE_PASS:
            ours = median_ms(lambda layer=layer, method=method: clf.predict([item], layer, method), repeats, warmup)
            obj = kinds[method](model, [getattr(model, layer)])
            theirs = median_ms(lambda obj=obj: obj(input_tensor=x5, targets=targets), repeats, warmup)
            obj.activations_and_grads.release()
            line(METHOD_NAMES[method], layer, ours, theirs)

    score_layers = ("layer4",) if args.quick else ("layer2", "layer3", "layer4")
    for layer in score_layers:
        channels = range(32) if args.quick else None
        maps = 32 if args.quick else STAGE_CHANNELS[layer]
        t = time.perf_counter()
        clf.score_cams(item, classes, layer, channels=channels)
        ours = (time.perf_counter() - t) * 1000
        theirs = None
        if not args.quick:
            obj = ScoreCAM(model, [getattr(model, layer)])
            t = time.perf_counter()
            obj(input_tensor=x5[:1], targets=targets[:1])
            theirs = 5 * (time.perf_counter() - t) * 1000
            obj.activations_and_grads.release()
        line("Score-CAM", layer, ours, theirs, f" ({maps} maps{', --quick' if args.quick else ''})")

    cam_map = pred.cams[0]
    t = time.perf_counter()
    clf.faithfulness(item, classes[0], cam_map)
    ours = (time.perf_counter() - t) * 1000
    theirs = None
    if not args.quick:
        from pytorch_grad_cam.metrics.road import ROADCombined

        from resnext_gui.core.cam import upsample

        big = upsample(cam_map, (224, 224))[None]
        t = time.perf_counter()
        ROADCombined()(x5[:1], big, targets[:1], model)
        theirs = (time.perf_counter() - t) * 1000
    line("faithfulness of one map (ours: deletion + insertion, and a random map's; theirs: ROADCombined)", "layer4",
         ours, theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
