"""The core's own exceptions: each carries a message meant for the person using the app."""


class ResnextGuiError(Exception):
    """Base class; str(exc) is a complete, user-facing sentence."""


class ImageError(ResnextGuiError):
    """A file could not be read as a photo (missing, not an image, truncated, too large...)."""


class XmpError(ResnextGuiError):
    """Keywords could not be written for one photo (its sidecar is not XMP, a link, read-only, the disk is full...);
    the photo and any existing sidecar are left as they were."""


class WeightsError(ResnextGuiError):
    """A checkpoint is missing, unreadable, unsafe, or not a ResNeXt-50 32x4d."""


class NoWeightsError(WeightsError):
    """No weights were found anywhere in the lookup order."""


class DownloadError(ResnextGuiError):
    """A weights download failed or did not verify; nothing was left at the destination."""


class NoConnectionError(DownloadError):
    """A download could not reach its server at all: no network, no name server (the computer is offline).
    ``detail``: what the system said ("download.pytorch.org could not be looked up: Name or service not known")."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class DeviceError(ResnextGuiError):
    """The requested compute device is not available."""


class BackendError(ResnextGuiError):
    """The runtime could not build, compile or run the network, and no other runtime could take over."""


class OpenVINOError(BackendError):
    """OpenVINO could not build, compile or run the network (the app can use PyTorch instead)."""


class Cancelled(ResnextGuiError):
    """A long computation (Score-CAM, the faithfulness figures) was stopped by the user before it finished."""
