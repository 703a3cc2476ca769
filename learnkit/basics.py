"""The domain-free lesson surface: ``from learnkit.basics import *`` (data pipeline, Learner, callbacks, losses, metrics, optimizers)."""
from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from learnkit.utils import (Path, set_seed, default_device, atomic_write, to_device, one_hot, pca, tensor, range_of)  # noqa: F401
from learnkit.data.transforms import (Transform, ToTensor, IntToFloatTensor)  # noqa: F401
from learnkit.data.blocks import (TransformBlock, CategoryBlock, MultiCategoryBlock, RegressionBlock)  # noqa: F401
from learnkit.data.getters import (get_files, image_extensions, get_image_files, get_text_files, FileGetter, ImageGetter, parent_label, RegexLabeller, ColReader, using_attr)  # noqa: F401
from learnkit.data.splitters import (RandomSplitter, TrainTestSplitter, IndexSplitter, GrandparentSplitter, FuncSplitter, MaskSplitter, FileSplitter, ColSplitter, EndSplitter)  # noqa: F401
from learnkit.data.core import (Datasets, DataLoader, DataLoaders)  # noqa: F401
from learnkit.data.block import (DataBlock)  # noqa: F401
from learnkit.data.show import (show_image, show_titled_grid)  # noqa: F401
from learnkit.callback.core import (EVENTS, Callback, CancelFitException, CancelEpochException, CancelTrainException, CancelValidException, CancelBatchException, CancelStepException, CancelBackwardException)  # noqa: F401
from learnkit.callback.schedule import (ParamScheduler, SchedCos, SchedLin, SchedNo, SchedExp, SchedPoly, combine_scheds, combined_cos, valley, slide, minimum, steep)  # noqa: F401
from learnkit.callback.recorder import (Recorder)  # noqa: F401
from learnkit.callback.progress import (ProgressCallback, ShowGraphCallback)  # noqa: F401
from learnkit.callback.precision import (MixedPrecision)  # noqa: F401
from learnkit.callback.tracker import (TrackerCallback, SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateau)  # noqa: F401
from learnkit.callback.training import (BnFreeze, GradientAccumulation, GradientClip, TerminateOnNaNCallback)  # noqa: F401
from learnkit.callback.finite import (FiniteLossGuard)  # noqa: F401
from learnkit.callback.logger import (CSVLogger, TensorBoardCallback)  # noqa: F401
from learnkit.callback.mlflow import (MLflowCallback)  # noqa: F401
from learnkit.callback.wandb import (WandbCallback)  # noqa: F401
from learnkit.tune import (PruningCallback, tune, build_best)  # noqa: F401
from learnkit.callback.mixup import (MixHandler, MixUp, CutMix)  # noqa: F401
from learnkit.callback.progressive import (ProgressiveResize)  # noqa: F401
from learnkit.losses import (CrossEntropyLossFlat, BCEWithLogitsLossFlat, MSELossFlat, L1LossFlat, LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, FocalLoss, FocalLossFlat, DiceLoss)  # noqa: F401
from learnkit.metrics import (Metric, AvgMetric, AccumMetric, accuracy, error_rate, top_k_accuracy, accuracy_multi, FBeta, F1Score, Precision, Recall, BalancedAccuracy, MatthewsCorrCoef, RocAuc, RocAucBinary, mse, rmse, mae, msle, exp_rmspe, R2Score, foreground_acc, Dice, DiceMulti, JaccardCoeff)  # noqa: F401
from learnkit.optimizer import (Adam, SGD, RAdam, Lookahead, ranger)  # noqa: F401
from learnkit.learner import (Learner, trainable_params)  # noqa: F401
from learnkit.distributed import (rank_distrib, num_distrib, distrib_barrier)  # noqa: F401
from learnkit.export import (load_learner)  # noqa: F401
from learnkit.interpret import (Interpretation, ClassificationInterpretation, SegmentationInterpretation)  # noqa: F401
from learnkit.samples import (sample_path, SAMPLES)  # noqa: F401
from learnkit.data.external import (URLs, untar_data, download_url)  # noqa: F401
from learnkit.data.splitters import (TrainValidTestSplitter)  # noqa: F401
from learnkit.data.imbalance import (WeightedDL, class_weights, label_counts)  # noqa: F401
from learnkit.callback.hook import (Hook, Hooks, hook_output, hook_outputs, HookCallback, ActivationStats, has_params, flatten_model)  # noqa: F401
from learnkit.callback.regularizers import (L1L2Regularizer)  # noqa: F401
from learnkit.layers import (Identity, Lambda, Flatten, View, ResizeBatch, SequentialEx, MergeLayer, in_channels, Embedding, LinBnDrop, trunc_normal_)  # noqa: F401

__all__ = [
    "torch", "nn", "F", "tensor", "np", "pd", "plt", "partial", "Path", "set_seed", "default_device", "atomic_write",
    "to_device", "one_hot", "pca", "range_of", "Transform", "ToTensor", "IntToFloatTensor", "TransformBlock",
    "CategoryBlock", "MultiCategoryBlock", "RegressionBlock", "get_files", "image_extensions",
    "get_image_files", "get_text_files", "FileGetter", "ImageGetter", "parent_label", "RegexLabeller",
    "ColReader", "using_attr", "RandomSplitter", "TrainTestSplitter", "IndexSplitter", "GrandparentSplitter",
    "FuncSplitter", "MaskSplitter", "FileSplitter", "ColSplitter", "EndSplitter", "Datasets", "DataLoader",
    "DataLoaders", "DataBlock", "show_image", "show_titled_grid", "EVENTS", "Callback", "CancelFitException",
    "CancelEpochException", "CancelTrainException", "CancelValidException", "CancelBatchException",
    "CancelStepException", "CancelBackwardException", "ParamScheduler", "SchedCos", "SchedLin", "SchedNo",
    "SchedExp", "SchedPoly", "combine_scheds", "combined_cos", "valley", "slide", "minimum", "steep",
    "Recorder", "ProgressCallback", "ShowGraphCallback", "MixedPrecision", "TrackerCallback", "SaveModelCallback",
    "EarlyStoppingCallback", "ReduceLROnPlateau", "GradientAccumulation", "GradientClip",
    "TerminateOnNaNCallback", "FiniteLossGuard", "BnFreeze", "CSVLogger", "TensorBoardCallback", "MLflowCallback", "WandbCallback",
    "PruningCallback", "tune", "build_best", "CrossEntropyLossFlat",
    "BCEWithLogitsLossFlat", "MSELossFlat", "L1LossFlat", "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat", "FocalLoss", "FocalLossFlat", "DiceLoss", "Metric", "AvgMetric",
    "AccumMetric", "accuracy", "error_rate", "top_k_accuracy", "accuracy_multi", "FBeta", "F1Score",
    "Precision", "Recall", "BalancedAccuracy", "MatthewsCorrCoef", "RocAuc", "RocAucBinary", "mse", "rmse",
    "mae", "msle", "exp_rmspe", "R2Score", "foreground_acc", "Dice", "DiceMulti", "JaccardCoeff", "Adam",
    "SGD", "RAdam", "Lookahead", "ranger", "Learner", "trainable_params", "load_learner", "sample_path",
    "MixHandler", "MixUp", "CutMix", "ProgressiveResize",
    "rank_distrib", "num_distrib", "distrib_barrier",
    "SAMPLES", "URLs", "untar_data", "download_url",
    "Interpretation", "ClassificationInterpretation", "SegmentationInterpretation",
    "TrainValidTestSplitter", "WeightedDL", "class_weights", "label_counts", "Hook", "Hooks", "hook_output",
    "hook_outputs", "HookCallback", "ActivationStats", "has_params", "flatten_model", "L1L2Regularizer",
    "Identity", "Lambda", "Flatten", "View", "ResizeBatch", "SequentialEx", "MergeLayer", "in_channels", "Embedding",
    "LinBnDrop", "trunc_normal_",
]

# fastai fidelity (issue 13): data transforms, losses, metrics, optimizers, callbacks
from learnkit.data.blocks import (CategoryMap, Categorize, MultiCategorize, OneHotEncode, EncodedMultiCategorize, RegressionSetup)  # noqa: F401,E402
from learnkit.data.getters import (ItemGetter, AttrGetter)  # noqa: F401,E402
from learnkit.data.splitters import (RandomSubsetSplitter)  # noqa: F401,E402
from learnkit.callback.training import (ShortEpochCallback)  # noqa: F401,E402
from learnkit.callback.schedule import (LRFinder)  # noqa: F401,E402
from learnkit.losses import (BCELossFlat)  # noqa: F401,E402
from learnkit.metrics import (ActivationType, skm_to_fastai, APScoreMulti, RocAucMulti, PearsonCorrCoef, SpearmanCorrCoef, JaccardCoeffMulti, LossMetric, LossMetrics, AvgLoss, Perplexity, perplexity)  # noqa: F401,E402
from learnkit.optimizer import (RMSProp, QHAdam, Larc, Lamb)  # noqa: F401,E402

__all__ += [
    "CategoryMap", "Categorize", "MultiCategorize", "OneHotEncode", "EncodedMultiCategorize", "RegressionSetup",
    "ItemGetter", "AttrGetter", "RandomSubsetSplitter", "ShortEpochCallback", "LRFinder", "BCELossFlat",
    "ActivationType", "skm_to_fastai", "APScoreMulti", "RocAucMulti", "PearsonCorrCoef",
    "SpearmanCorrCoef", "JaccardCoeffMulti", "LossMetric", "LossMetrics", "AvgLoss", "Perplexity", "perplexity",
    "RMSProp", "QHAdam", "Larc", "Lamb",
]

# fastcore's collection helpers, which the fastai book's code calls (`L(...).map(f)`, `first(dl)`, `coll_repr(toks, 30)`)
from fastcore.basics import first  # noqa: F401,E402
from fastcore.foundation import L, coll_repr  # noqa: F401,E402

__all__ += ["L", "first", "coll_repr"]

# fastai fidelity (issue 31): callback internals, the callback optimizer, fastcore's GetAttr / store_attr
from fastcore.basics import GetAttr, store_attr  # noqa: F401,E402
from learnkit.callback.core import (event)  # noqa: F401,E402
from learnkit.callback.preds import (MCDropoutCallback)  # noqa: F401,E402
from learnkit.optim_steppers import (Optimizer, sgd_step, weight_decay, l2_reg, average_grad, average_sqr_grad, momentum_step, rms_prop_step, step_stat, debias, adam_step)  # noqa: F401,E402

__all__ += [
    "GetAttr", "store_attr", "event", "MCDropoutCallback", "Optimizer", "sgd_step", "weight_decay", "l2_reg",
    "average_grad", "average_sqr_grad", "momentum_step", "rms_prop_step", "step_stat", "debias", "adam_step",
]
from learnkit.callback.model_info import (dummy_eval, model_sizes, total_params, layer_info)  # noqa: F401,E402
from learnkit.callback.precision import (test_overflow, grad_overflow)  # noqa: F401,E402
from learnkit.layers import (Module, noop)  # noqa: F401,E402

__all__ += ["dummy_eval", "model_sizes", "total_params", "layer_info", "test_overflow", "grad_overflow", "Module", "noop"]
# fastai's mid-level data API (issue 31)
from learnkit.data.mid import (ItemTransform, Pipeline, fastuple, mask2idxs, show_at)  # noqa: F401,E402
from learnkit.data.tfmdlists import (TfmdLists)  # noqa: F401,E402

__all__ += ["ItemTransform", "Pipeline", "TfmdLists", "fastuple", "mask2idxs", "show_at"]
from learnkit.utils import to_np  # noqa: F401,E402

__all__ += ["to_np"]

from learnkit.data.load import (SkipItemException, fa_collate, fa_convert)  # noqa: F401,E402
__all__ += ["SkipItemException", "fa_collate", "fa_convert"]

# what `from fastai.vision.all import *` also brings, which the book's chapters use (issue 31)
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import string  # noqa: E402

import matplotlib  # noqa: E402
from numpy import array  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor  # noqa: E402
from fastcore.basics import Self, defaults  # noqa: E402
from fastcore.parallel import ProcessPoolExecutor  # noqa: E402
from learnkit.data.getters import (get_image_files_sorted)  # noqa: F401,E402
from learnkit.metrics import (CorpusBLEUMetric)  # noqa: F401,E402
from learnkit.torch_helpers import (to_cpu, sequential, params, subplots, progress_bar)  # noqa: F401,E402

__all__ += ["math", "random", "re", "string", "matplotlib", "array", "Image", "Tensor", "to_cpu", "sequential", "params",
            "subplots", "progress_bar", "Self", "defaults", "ProcessPoolExecutor", "get_image_files_sorted",
            "CorpusBLEUMetric"]

# Trainer habits (issue 25): validation every n training steps
from learnkit.callback.validate_every import (ValidateEvery)  # noqa: F401,E402

__all__ += ["ValidateEvery"]
