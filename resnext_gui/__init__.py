"""resnext-gui: a desktop image classifier (ResNeXt-50, top-5 ImageNet classes, Grad-CAM heatmaps)."""

__version__ = "0.1.0"
