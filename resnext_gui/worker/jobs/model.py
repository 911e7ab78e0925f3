"""Jobs on the model: load weights on a device and runtime (answers what runs, or that there are no weights), download the official weights."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...core.kinds import Backend, Precision
from ..queue import Cancellable, Job, JobFailed
from ..results import ModelInfo, ModelMissing
from ..runner import ModelChoice

if TYPE_CHECKING:
    from ..runner import ClassifierLike, Context


@dataclass(eq=False)
class LoadJob(Job["ModelInfo | ModelMissing"]):
    """Weights, device, CPU runtime or precision; answers ModelInfo, or ModelMissing when there are no weights.
    Photos waiting for a model go ahead once it is loaded; the results library opens after the first load."""

    weights: str | None = None  # None: the lookup order
    device: str = "auto"
    explicit: bool = False  # True when the user chose it: a failure keeps the previous model
    backend: Backend | None = None  # None: as before
    precision: Precision | None = None  # None: as before

    def run(self, ctx: Context) -> ModelInfo | ModelMissing:
        try:
            return self._load(ctx)
        finally:
            ctx.library.open()

    def _load(self, ctx: Context) -> ModelInfo | ModelMissing:
        from ...core.devices import RUNTIME_NAMES, resolve, runtime_problem
        from ...core.errors import DeviceError, NoWeightsError, ResnextGuiError

        ctx.say_loading("Loading model…")
        device, note = self.device, None
        try:
            resolve(device)
        except DeviceError as exc:  # e.g. CUDA remembered from another session, no GPU here now
            device, note = "cpu", f"{exc} Using the CPU."
        backend = self.backend or ctx.model.backend
        problem = runtime_problem(backend)
        if problem:  # a runtime this build does not have (asked for by name): the one it has, said once
            note = "; ".join(n for n in (note, f"the CPU runtime {RUNTIME_NAMES[backend]} cannot run here: {problem}. "
                                                f"Using {RUNTIME_NAMES['auto']}.") if n)
            backend = "auto"
        choice = ModelChoice(self.weights, self.device, backend, self.precision or ctx.model.precision)
        try:
            clf = ctx.factory(self.weights, device, backend=choice.backend, precision=choice.precision,
                              progress=ctx.say_loading)  # a first conversion shows its steps in the status bar
            info = model_info(clf, "; ".join(n for n in (note, clf.note) if n) or None, ctx.cuda_available)
            info.backend_choice = choice.backend
        except NoWeightsError as exc:
            return ModelMissing(str(exc))
        except Exception as exc:  # our own errors, and whatever a device driver raises
            message = str(exc) if isinstance(exc, ResnextGuiError) else f"could not load the model: {exc!r}"
            if ctx.classifier is None and not self.explicit:
                return ModelMissing(message)
            raise JobFailed(message) from exc
        ctx.use_model(clf, choice)
        # torch, the model and Qt are hundreds of thousands of objects that live as long as the app: out of the
        # collector's full passes, which would otherwise hold the interpreter (and freeze the window) for long.
        gc.freeze()
        return info


def model_info(clf: ClassifierLike, note: str | None, cuda_available: bool) -> ModelInfo:
    """What the window shows of the model in use: device and runtime, weights, classes, versions."""
    from ...core.answers import key_of
    from ...core.devices import describe, native_bf16, versions

    source = clf.source
    runtime = ("OpenVINO" if clf.backend == "openvino" else "PyTorch") + (" bf16" if clf.precision == "bf16" else "")
    return ModelInfo(
        device=f"{describe(clf.device)} · {runtime}",
        backend=clf.backend, precision=clf.precision, bf16_native=clf.device.type == "cpu" and native_bf16(),
        device_type=clf.device.type,
        weights=source.describe(),
        weights_short=source.variant.describe() if source.variant else source.path.name,
        num_classes=len(clf.labels),
        cuda_available=cuda_available,
        load_ms=clf.load_ms,
        versions=versions(),
        note=note,
        model_key=key_of(clf),
    )


@dataclass(eq=False)
class DownloadJob(Job[str], Cancellable):
    """Fetch and verify the official weights; answers the saved path (the caller then loads them). ``cancel``
    takes effect within a second, even while the server is silent."""

    variant: str = "v2"
    url: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def run(self, ctx: Context) -> str:
        from ...core import weights
        from ...core.errors import NoConnectionError, ResnextGuiError

        try:
            path = weights.fetch(weights.VARIANTS[self.variant], url=self.url, progress=ctx.progress_of(self),
                                 cancelled=self.cancel.is_set)
        except weights.DownloadCancelled as exc:
            raise JobFailed("Download cancelled; nothing was saved.") from exc
        except NoConnectionError as exc:
            raise JobFailed(f"This computer has no connection to the internet, so the ImageNet weights could not be "
                            f"downloaded; nothing was saved. Open a weights file you have instead, or try again "
                            f"once it is online.\n\n({exc.detail or exc})") from exc
        except ResnextGuiError as exc:
            raise JobFailed(str(exc)) from exc
        except Exception as exc:  # a network or disk fault of any kind ends the download with a message
            raise JobFailed(f"the download failed: {exc!r}") from exc
        return str(path)
