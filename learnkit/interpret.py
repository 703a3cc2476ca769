"""Looking at what a trained model gets wrong: top losses, confusion matrix, classification report.

``Interpretation.from_learner(learn)`` runs one prediction pass over a loader (validation by default) and
keeps predictions, targets, decoded predictions and per-item losses (the mean over pixels for masks).
Inputs are not kept when the loader can rebuild items by index (learnkit loaders: the deterministic
validation transforms give the same inputs again), so a large validation set costs no memory for them.
Every plot returns its matplotlib figure and never calls ``plt.show`` (fine headless, never blocks).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Subset

from .data.show import IMAGE_KINDS, format_value, show_sample
from .data.transforms import TRAIN
from .learner import Learner

__all__ = ["Interpretation", "ClassificationInterpretation", "SegmentationInterpretation"]

_IM_SIZE = 3.0  # inches per grid cell


def _index(x: Any, idxs: list[int]) -> Any:
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(_index(o, idxs) for o in x)
    return x[idxs]


def _tup(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _per_item(losses: torch.Tensor, n: int) -> torch.Tensor:
    """One loss per item: the mean over every other dimension (pixels of a mask, labels of a multi-hot target)."""
    losses = torch.as_tensor(losses).float()
    if losses.ndim == 0 or losses.shape[0] != n or losses.numel() % max(n, 1):
        raise ValueError(f"Interpretation needs one loss per item: got losses of shape {tuple(losses.shape)} for "
                         f"{n} predictions. Use a loss with reduction='none' support (get_preds(with_loss=True)).")
    return losses.reshape(n, -1).mean(1) if losses.ndim > 1 else losses


class Interpretation:
    """Predictions, targets, decoded predictions and per-item losses over one loader, for any learner.

    ``Interpretation(learn_or_dl, inputs, preds, targs, decoded, losses, dl=None)``: ``learn_or_dl`` is a
    Learner (its validation loader is used unless ``dl`` is given) or a loader; ``inputs`` may be None when
    the loader can rebuild items by index. Use ``from_learner`` to make one from a prediction pass.
    """

    def __init__(self, learn_or_dl: Any, inputs: Any, preds: Any, targs: Any, decoded: Any, losses: Any,
                 dl: Any = None) -> None:
        self.learn = learn_or_dl if isinstance(learn_or_dl, Learner) else None
        if dl is None:
            dl = self.learn.dls.valid if self.learn is not None else learn_or_dl
        self.dl = dl
        self.inputs, self.preds, self.targs, self.decoded = inputs, preds, targs, decoded
        self.losses = _per_item(losses, len(self))

    def __len__(self) -> int:
        return int(_tup(self.preds if self.preds is not None else self.decoded)[0].shape[0])

    @classmethod
    def from_learner(cls, learn: Learner, ds_idx: int = 1, dl: Any = None, act: Any = None) -> "Interpretation":
        """One prediction pass over ``dl`` (default: loader ``ds_idx``), read unshuffled and complete, kept for analysis.

        A learnkit loader is always read as ``dl.new(shuffle=False, drop_last=False)``, so losses follow dataset
        order. Over a training loader (random augmentation) the inputs that were scored are kept, so the plots
        show exactly what each loss was computed on.
        """
        dl, keep_inputs = _prepare(learn, ds_idx, dl)
        with learn.no_bar():
            res = learn.get_preds(dl=dl, with_input=keep_inputs, with_decoded=True, with_loss=True, act=act)
        inputs, res = (res[0], res[1:]) if keep_inputs else (None, res)
        preds, targs, decoded, losses = res
        return cls(learn, inputs, preds, targs, decoded, losses, dl=dl)

    # -- items
    @property
    def n_inp(self) -> int:
        """Number of inputs in a sample."""
        return getattr(self.dl, "n_inp", 1) or 1

    @property
    def kinds(self) -> tuple:
        """Kinds of the values in a sample (inputs, then targets)."""
        kinds = getattr(self.dl, "kinds", None)
        return tuple(kinds) if kinds else ("generic",) * (self.n_inp + len(_tup(self.targs)))

    @property
    def target_block(self) -> Any:
        """The block of the first target (decodes class indices to labels), or None for plain loaders."""
        blocks = getattr(self.dl, "blocks", None)
        return blocks[self.n_inp] if blocks is not None and len(blocks) > self.n_inp else None

    @property
    def items(self) -> list | None:
        """The raw items (e.g. file paths) of the loader's dataset, in prediction order, when it has them."""
        items = getattr(getattr(self.dl, "dataset", None), "items", None)
        return list(items) if items is not None else None

    def _inputs_at(self, idxs: list[int]) -> tuple:
        if self.inputs is not None:
            return _tup(_index(self.inputs, idxs))
        sub = self.dl.new(dataset=Subset(self.dl.dataset, idxs), shuffle=False, drop_last=False, bs=max(len(idxs), 1),
                          num_workers=0)
        b = tuple(sub.one_batch())
        return tuple(v.detach().cpu() if isinstance(v, torch.Tensor) else v for v in b[:self.n_inp])

    def __getitem__(self, idxs: Any) -> tuple:
        """``(inputs, preds, targs, decoded, losses)`` at ``idxs`` (an int, a slice, a list or a tensor of indices)."""
        one = isinstance(idxs, (int, np.integer)) or (isinstance(idxs, torch.Tensor) and idxs.ndim == 0)
        idxs = _as_idxs(idxs, len(self))
        res = (self._inputs_at(idxs), _index(self.preds, idxs), _index(self.targs, idxs), _index(self.decoded, idxs),
               self.losses[idxs])
        return tuple(_index(r, 0) for r in res) if one else res  # one item: no batch dimension (fastai's)

    def _decoded_samples(self, idxs: list[int], with_preds: bool = False) -> list[tuple]:
        """Samples at ``idxs`` decoded for display (images de-normalised, labels); the prediction replaces the target."""
        inputs = self._inputs_at(idxs)
        ys = _tup(_index(self.decoded if with_preds else self.targs, idxs))
        batch = tuple(inputs) + ys
        if hasattr(self.dl, "decode_batch"):
            return self.dl.decode_batch(batch)
        return [tuple(v[i] for v in batch) for i in range(len(idxs))]

    # -- losses
    def top_losses(self, k: int | None = None, largest: bool = True, items: bool = False) -> tuple:
        """``(losses, indices)`` of the ``k`` largest (or smallest) losses, all of them when ``k`` is None."""
        k = len(self.losses) if k is None else min(int(k), len(self.losses))
        vals, idx = self.losses.topk(k, largest=largest)
        if items:
            its = self.items
            if its is None:
                raise ValueError("top_losses(items=True): this loader's dataset has no `items` (file names, rows).")
            return vals, idx, [its[i] for i in idx.tolist()]
        return vals, idx

    def _parts(self, i: int) -> tuple[str, str, float, float | None]:
        """``(prediction, actual, loss, probability or None)`` of item ``i``, as text where they are labels."""
        kind = self.kinds[self.n_inp] if len(self.kinds) > self.n_inp else "generic"
        pred, targ = self._label(_tup(self.decoded)[0][i]), self._label(_tup(self.targs)[0][i])
        p, t = _tup(self.preds)[0][i], _tup(self.targs)[0]
        single_label = kind == "category" or (kind == "generic" and p.ndim == 1 and p.numel() > 1 and t.ndim == 1
                                              and not torch.is_floating_point(t))
        prob = p.max().item() if single_label else None
        return format_value(pred, kind), format_value(targ, kind), self.losses[i].item(), prob

    def _title(self, i: int) -> str:
        """``prediction/actual / loss[ / probability]`` for item ``i`` (fastai's plot_top_losses format)."""
        pred, targ, loss, prob = self._parts(i)
        return f"{pred}/{targ} / {loss:.2f}" + ("" if prob is None else f" / {prob:.2f}")

    def _label(self, v: Any) -> Any:
        """A decoded target or prediction as the user knows it (class index -> label)."""
        tb = self.target_block
        return tb.decode(v) if tb is not None and tb.kind in ("category", "multicategory") else v

    def _pick(self, k: int | Sequence[int], largest: bool) -> tuple[torch.Tensor, list[int]]:
        if isinstance(k, (list, tuple, range)):
            losses, idx = self.top_losses(None, largest)
            sel = list(k)
            return losses[sel], idx[sel].tolist()
        losses, idx = self.top_losses(k, largest)
        return losses, idx.tolist()

    def plot_top_losses(self, k: int | Sequence[int], largest: bool = True, nrows: int | None = None,
                        ncols: int | None = None, figsize: tuple | None = None, **kwargs: Any) -> Any:
        """Draw the ``k`` items with the largest losses titled ``prediction/actual / loss / probability``.

        ``k`` may also be a list/range of ranks (e.g. ``range(5, 10)``). Returns the figure; for inputs that are
        not images (tabular rows...) returns a DataFrame of ``target``, ``prediction``, ``loss``, ``probability``.
        """
        _, idx = self._pick(k, largest)
        if not idx:
            raise ValueError("plot_top_losses: nothing to plot (k=0 or an empty loader).")
        in_kind = self.kinds[0]
        if in_kind not in IMAGE_KINDS:
            return self._losses_frame(idx)
        import matplotlib.pyplot as plt
        samples = self._decoded_samples(idx)
        n = len(idx)
        if nrows is None and ncols is None:
            ncols = math.ceil(math.sqrt(n))
        if nrows is None:
            nrows = math.ceil(n / ncols)
        if ncols is None:
            ncols = math.ceil(n / nrows)
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (ncols * _IM_SIZE, nrows * _IM_SIZE + 0.5),
                                squeeze=False)
        axs = axs.flatten()
        kinds = self.kinds[:self.n_inp]
        for ax, s, i in zip(axs, samples, idx):
            show_sample(s[:self.n_inp], kinds, ax=ax, title=self._title(i))
        for ax in axs[n:]:
            ax.set_visible(False)
        fig.suptitle("Prediction/Actual/Loss/Probability")
        fig.tight_layout()
        return fig

    def _losses_frame(self, idx: list[int]) -> pd.DataFrame:
        rows = []
        for i in idx:
            pred, targ, loss, prob = self._parts(i)
            row = {"index": i, "target": targ, "prediction": pred, "loss": loss}
            if prob is not None:
                row["probability"] = prob
            rows.append(row)
        return pd.DataFrame(rows).set_index("index")

    def show_results(self, idxs: Any, max_n: int | None = None, **kwargs: Any) -> Any:
        """Draw the items at ``idxs`` titled ``actual/prediction`` (as ``learn.show_results`` does)."""
        idxs = _as_idxs(idxs)[:max_n]
        samples = self._decoded_samples(idxs)
        kind = self.kinds[self.n_inp] if len(self.kinds) > self.n_inp else "generic"
        titles = []
        for i in idxs:
            pred, targ = self._label(_tup(self.decoded)[0][i]), self._label(_tup(self.targs)[0][i])
            titles.append(f"{format_value(targ, kind)}/{format_value(pred, kind)}")
        from .data.show import show_samples
        return show_samples([s[:self.n_inp] for s in samples], self.kinds[:self.n_inp], max_n=len(idxs), titles=titles,
                            **kwargs)


def _as_idxs(idxs: Any, n: int | None = None) -> list[int]:
    if isinstance(idxs, slice):  # interp[:5], interp[10:20:2] as in fastai
        return list(range(n))[idxs]
    if isinstance(idxs, torch.Tensor):
        idxs = idxs.tolist()
    if isinstance(idxs, (int, np.integer)):
        idxs = [int(idxs)]
    return [int(i) for i in idxs]


def _prepare(learn: Learner, ds_idx: int, dl: Any) -> tuple[Any, bool]:
    """The loader to read (unshuffled, complete) and whether its inputs must be kept (not rebuildable as scored)."""
    if dl is None:
        dl = learn.dls[ds_idx]
    if hasattr(dl, "new") and (getattr(dl, "shuffle", False) or getattr(dl, "drop_last", False)):
        dl = dl.new(shuffle=False, drop_last=False)
    training_tfms = getattr(dl, "split_idx", None) == TRAIN  # random augmentation: rebuilding would draw anew
    return dl, training_tfms or not _can_rebuild(dl)


def _can_rebuild(dl: Any) -> bool:
    """Whether ``dl`` can give the item at any index again (learnkit loader over an indexable dataset)."""
    ds = getattr(dl, "dataset", None)
    return hasattr(dl, "new") and hasattr(dl, "decode_batch") and ds is not None and hasattr(ds, "__getitem__") \
        and hasattr(ds, "__len__")


class ClassificationInterpretation(Interpretation):
    """Interpretation of a single-label classifier: confusion matrix, most confused pairs, classification report."""

    @property
    def vocab(self) -> list:
        """Class names in index order (the loader's vocab, else ``0..c-1``)."""
        tb = self.target_block
        if tb is not None and tb.vocab is not None:
            return list(tb.vocab)
        ds_vocab = getattr(getattr(self.dl, "dataset", None), "vocab", None)
        if ds_vocab is not None:
            return list(ds_vocab)
        p = _tup(self.preds)[0]
        return list(range(p.shape[-1] if p.ndim > 1 else int(max(self._dt()[0].max(), self._dt()[1].max())) + 1))

    def _label(self, v: Any) -> Any:
        """Class index -> class name (from the vocab even without a target block)."""
        if self.target_block is not None:
            return super()._label(v)
        return self.vocab[int(v)]

    def _dt(self) -> tuple[np.ndarray, np.ndarray]:
        d, t = _tup(self.decoded)[0], _tup(self.targs)[0]
        if t.ndim > 1 or torch.is_floating_point(t):
            raise ValueError(f"ClassificationInterpretation needs one class index per item; the targets have shape "
                             f"{tuple(t.shape)} and dtype {t.dtype} (multi-label or regression): use Interpretation "
                             f"for top losses instead.")
        return d.reshape(-1).long().numpy(), t.reshape(-1).long().numpy()

    def confusion_matrix(self) -> np.ndarray:
        """Counts as an int array: rows are the actual classes, columns the predicted ones, in vocab order."""
        d, t = self._dt()
        n = len(self.vocab)
        return np.bincount(t * n + d, minlength=n * n).reshape(n, n).astype(np.int64)

    def plot_confusion_matrix(self, normalize: bool = False, title: str = "Confusion matrix", cmap: str = "Blues",
                              norm_dec: int = 2, plot_txt: bool = True, figsize: tuple | None = None,
                              **kwargs: Any) -> Any:
        """Draw the confusion matrix (rows actual, columns predicted) with each cell's value; returns the figure."""
        import matplotlib.pyplot as plt
        cm = self.confusion_matrix()
        if normalize:
            with np.errstate(invalid="ignore", divide="ignore"):
                cm = np.nan_to_num(cm.astype(float) / cm.sum(axis=1, keepdims=True))
        vocab = [str(v) for v in self.vocab]
        fig, ax = plt.subplots(figsize=figsize, **kwargs)
        ax.imshow(cm, interpolation="nearest", cmap=cmap)
        ax.set_title(title)
        ticks = np.arange(len(vocab))
        ax.set_xticks(ticks, vocab, rotation=90)
        ax.set_yticks(ticks, vocab)
        if plot_txt:
            thresh = cm.max() / 2.0
            for i in range(cm.shape[0]):
                for j in range(cm.shape[1]):
                    txt = f"{cm[i, j]:.{norm_dec}f}" if normalize else f"{cm[i, j]}"
                    ax.text(j, i, txt, ha="center", va="center", color="white" if cm[i, j] > thresh else "black")
        ax.set_ylim(len(vocab) - 0.5, -0.5)
        ax.set_ylabel("Actual")
        ax.set_xlabel("Predicted")
        ax.grid(False)
        fig.tight_layout()
        return fig

    def most_confused(self, min_val: int = 1) -> list[tuple]:
        """Off-diagonal ``(actual, predicted, count)`` with ``count >= min_val``, largest first."""
        cm = self.confusion_matrix()
        np.fill_diagonal(cm, 0)
        vocab = self.vocab
        res = [(vocab[i], vocab[j], int(cm[i, j])) for i, j in zip(*np.where(cm >= min_val))]
        return sorted(res, key=lambda o: o[2], reverse=True)

    def classification_report(self) -> dict:
        """Per-class ``precision/recall/f1-score/support`` plus ``accuracy``, ``macro avg``, ``weighted avg``."""
        cm = self.confusion_matrix().astype(float)
        tp, pred_n, support = np.diag(cm), cm.sum(0), cm.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.nan_to_num(tp / pred_n)
            rec = np.nan_to_num(tp / support)
            f1 = np.nan_to_num(2 * prec * rec / (prec + rec))
        total = support.sum()
        report: dict = {}
        for i, name in enumerate(self.vocab):
            report[str(name)] = {"precision": prec[i], "recall": rec[i], "f1-score": f1[i], "support": int(support[i])}
        report["accuracy"] = tp.sum() / total if total else 0.0
        w = support / total if total else support
        report["macro avg"] = {"precision": prec.mean(), "recall": rec.mean(), "f1-score": f1.mean(),
                               "support": int(total)}
        report["weighted avg"] = {"precision": (prec * w).sum(), "recall": (rec * w).sum(), "f1-score": (f1 * w).sum(),
                                  "support": int(total)}
        return report

    def print_classification_report(self, digits: int = 2) -> str:
        """Print (and return) the report laid out like scikit-learn's ``classification_report``."""
        rep = self.classification_report()
        names = [str(v) for v in self.vocab]
        width = max(max((len(n) for n in names), default=0), len("weighted avg"), digits)
        head = " " * width + " " + "".join(f" {h:>9}" for h in ("precision", "recall", "f1-score", "support"))
        lines = [head, ""]

        def row(name: str, r: dict) -> str:
            return f"{name:>{width}} " + "".join(f" {r[k]:>9.{digits}f}" for k in ("precision", "recall", "f1-score")) \
                + f" {r['support']:>9}"

        lines += [row(n, rep[n]) for n in names]
        lines.append("")
        total = rep["macro avg"]["support"]
        lines.append(f"{'accuracy':>{width}} " + " " * 20 + f" {rep['accuracy']:>9.{digits}f} {total:>9}")
        lines += [row("macro avg", rep["macro avg"]), row("weighted avg", rep["weighted avg"])]
        text = "\n".join(lines) + "\n"
        print(text)
        return text


class SegmentationInterpretation(Interpretation):
    """Interpretation of a segmentation model: per-image loss is the mean pixel loss; top losses show both masks.

    ``from_learner`` keeps no probabilities (``preds`` is None: N x C x H x W floats would take gigabytes): only
    per-image losses, the decoded masks and the target masks, stored as uint8 (int16) when the class ids fit.
    """

    @classmethod
    def from_learner(cls, learn: Learner, ds_idx: int = 1, dl: Any = None, act: Any = None) -> "Interpretation":
        """One prediction pass, batch by batch, keeping per-image losses and compact decoded and target masks."""
        dl, keep_inputs = _prepare(learn, ds_idx, dl)
        inputs, targs, decoded, losses = [], [], [], []
        with learn.no_bar():
            for b in dl:
                res = learn.get_preds(dl=[b], with_input=keep_inputs, with_decoded=True, with_loss=True, act=act)
                if keep_inputs:
                    inputs.append(res[0])
                    res = res[1:]
                preds, t, d, l = res
                n_classes = int(preds.shape[1]) if preds.ndim > 1 else None
                del preds
                targs.append(_compact(t, n_classes))
                decoded.append(_compact(d, n_classes))
                losses.append(_per_item(l, int(d.shape[0])))
        if not losses:
            raise ValueError("SegmentationInterpretation.from_learner: the loader is empty; nothing to interpret.")
        return cls(learn, _cat_same(inputs) if keep_inputs else None, None, _cat_same(targs), _cat_same(decoded),
                   torch.cat(losses), dl=dl)

    def plot_top_losses(self, k: int | Sequence[int], largest: bool = True, nrows: int | None = None,
                        ncols: int | None = None, figsize: tuple | None = None,
                        **kwargs: Any) -> Any:
        """One row per item: the image, the image with the target mask, the image with the predicted mask."""
        import matplotlib.pyplot as plt
        _, idx = self._pick(k, largest)
        if not idx:
            raise ValueError("plot_top_losses: nothing to plot (k=0 or an empty loader).")
        targets = self._decoded_samples(idx)
        preds = _tup(_index(self.decoded, idx))[0]
        n = len(idx)
        fig, axs = plt.subplots(n, 3, figsize=figsize or (3 * _IM_SIZE, n * _IM_SIZE), squeeze=False)
        kinds = self.kinds[:self.n_inp]
        for r, (s, i) in enumerate(zip(targets, idx)):
            x = s[:self.n_inp]
            show_sample(x, kinds, ax=axs[r, 0], title=f"input / loss {self.losses[i].item():.2f}")
            show_sample(tuple(x) + (s[self.n_inp],), tuple(kinds) + ("mask",), ax=axs[r, 1], title="target")
            show_sample(tuple(x) + (preds[r],), tuple(kinds) + ("mask",), ax=axs[r, 2], title="prediction")
        fig.tight_layout()
        return fig


def _compact(t: Any, n_classes: int | None) -> Any:
    """Integer masks as uint8 (ids 0..255) or int16 when every id fits, so N masks of H x W stay small."""
    if not isinstance(t, torch.Tensor) or torch.is_floating_point(t) or t.dtype == torch.bool or t.numel() == 0:
        return t
    lo, hi = int(t.min()), int(t.max())
    if n_classes is not None:
        hi = max(hi, n_classes - 1)
    if 0 <= lo and hi < 256:
        return t.to(torch.uint8)
    if -32768 <= lo and hi < 32768:
        return t.to(torch.int16)
    return t


def _cat_same(parts: list) -> Any:
    """Concatenate per-batch tensors (or tuples of them) in one dtype: the widest of the batches'."""
    if isinstance(parts[0], (tuple, list)):
        return type(parts[0])(_cat_same([p[i] for p in parts]) for i in range(len(parts[0])))
    dtype = parts[0].dtype
    for p in parts[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    return torch.cat([p.to(dtype) for p in parts])
