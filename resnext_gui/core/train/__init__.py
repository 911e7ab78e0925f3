"""Teaching new classes: folders of photos -> frozen-backbone features (cached) -> a new linear head -> a model file.

By step: ``data`` (the class folders), ``features`` (each photo's pooled features, cached), ``fit`` (the head),
``metrics`` (the figures), ``run`` (the whole run and its result), ``model_file`` (the model written and kept).
"""

from .data import MAX_CLASSES, MIN_PHOTOS, DataSet, TrainingCancelled, TrainingError, scan
from .features import FEATURE_DIM, FeatureCache, Features, backbone_sha256, extract, file_sha256
from .fit import L2, fit_head, predict, predict_proba, split
from .metrics import WORST_SHOWN, confusion_matrix, metrics
from .model_file import KEEP_MODELS, MODEL_SUFFIX, checkpoint_state, copy_model, model_path_problem, new_model_path, save
from .run import Mistake, TrainResult, explain, train

__all__ = [
    "FEATURE_DIM", "KEEP_MODELS", "WORST_SHOWN", "L2", "MAX_CLASSES", "MIN_PHOTOS", "MODEL_SUFFIX", "DataSet", "FeatureCache", "Features", "Mistake",
    "TrainResult", "TrainingCancelled", "TrainingError", "backbone_sha256", "checkpoint_state", "confusion_matrix",
    "copy_model", "explain", "extract", "file_sha256", "fit_head", "metrics", "model_path_problem", "new_model_path",
    "predict", "predict_proba", "save", "scan", "split", "train",
]
