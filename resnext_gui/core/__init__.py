"""The Qt-free core: weights, preprocessing, model, Grad-CAM and the Classifier engine."""
