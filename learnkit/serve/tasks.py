"""What each kind of export serves: its Gradio inputs and output, input checks, the item to predict, the answer.

``task_for(learner)`` reads the kind off the loaded learner (its blocks' kinds, its loaders, its model spec):
image classifier, multi-label, segmentation, text classifier, tabular, collab. A task turns the raw values
of its input components into one item for ``learn.predict`` / ``dls.test_dl`` (``item``), says what is wrong
with them first (``check``: one message or ``None`` per input), and turns a prediction (decoded, probabilities,
model input) into the output component's value (``format``).
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .batching import predict_items

MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (a 20000x20000 upload is 400M pixels)


def open_image(data: Any) -> Image.Image:
    """Open an upload (path, bytes or PIL image) as RGB, refusing non-images and images over MAX_PIXELS."""
    img = _image_header(data)
    return img.convert("RGB")


def _image_header(data: Any) -> Image.Image:
    """The lazily opened image (header read, pixels not decoded); ValueError for non-images and huge ones."""
    if isinstance(data, Image.Image):
        img = data
    else:
        try:
            img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        except Image.DecompressionBombError as e:  # PIL's own header check, stricter than ours for huge images
            raise ValueError(f"the image is too large to serve ({e}); the limit is {MAX_PIXELS} pixels: "
                             f"resize it first") from None
        except Exception as e:  # PIL raises several types for non-images
            raise ValueError(f"the upload {data!r:.80} is not an image PIL can read ({type(e).__name__}): "
                             f"send a JPEG, PNG or WebP file") from None
    w, h = img.size  # read from the header only: nothing decoded yet
    if w * h > MAX_PIXELS:
        raise ValueError(f"the image is {w}x{h} = {w * h} pixels, over the limit of {MAX_PIXELS}: resize it first")
    return img


def serve_kind(learner: Any) -> str:
    """The kind of app a learner gets: image, multilabel, segmentation, text, tabular or collab."""
    dls = learner.dls
    if (getattr(learner, "model_spec", None) or {}).get("builder") == "collab_learner":
        return "collab"
    if hasattr(dls, "cat_names") and hasattr(dls, "decode_prediction"):
        return "tabular"
    kinds, n = tuple(dls.kinds or ()), dls.n_inp
    x, y = kinds[:n], (kinds[n] if len(kinds) > n else None)
    found = {(("image",), "category"): "image", (("image",), "multicategory"): "multilabel",
             (("image",), "mask"): "segmentation", (("text",), "category"): "text"}.get((x, y))
    if found is None:
        raise ValueError(f"learnkit serve has no app for a learner whose inputs are {list(x)} and target {y!r}: "
                         f"it serves image classifiers (single and multi-label), segmentation, text classifiers, "
                         f"tabular and collab learners. Call learn.predict in your own app instead.")
    return found


def _vocab(learner: Any) -> list[str]:
    vocab = learner.dls.vocab
    if isinstance(vocab, (list, tuple)) and len(vocab) == 2 and isinstance(vocab[0], (list, tuple)):
        vocab = vocab[1]  # text loaders: (token vocab, label vocab)
    return [str(v) for v in vocab] if vocab is not None else []


class Task:
    """One kind of app: components, checks, the item to predict, the output value."""

    with_input = False  # whether format needs the model's (decoded) input, e.g. to draw a mask over it

    def __init__(self, learner: Any, k: int = 5) -> None:
        self.learner, self.k = learner, k

    def components(self, gr: Any) -> tuple[list, Any]:
        """The Gradio input components and the output component."""
        raise NotImplementedError

    def check(self, *values: Any) -> list[str | None]:
        """One message per input saying what is wrong with it (``None`` when it is fine)."""
        raise NotImplementedError

    def item(self, *values: Any) -> Any:
        """The item ``learn.predict`` takes, from checked input values."""
        raise NotImplementedError

    def format(self, decoded: Any, probs: torch.Tensor, x: Any = None) -> Any:
        """The output component's value for one prediction."""
        raise NotImplementedError

    def example(self) -> Any:
        """A valid item (to trace the model for ONNX): its content doesn't matter."""
        raise NotImplementedError

    def predict(self, items: list) -> list[tuple]:
        """``(decoded, probabilities[, model input])`` per item, from one batched pass."""
        return predict_items(self.learner, items, self.with_input)


class ImageTask(Task):
    """Single-label image classifier: top-k labels with probabilities."""

    def components(self, gr: Any) -> tuple[list, Any]:
        """An image upload (a path: the header is checked before decoding); a label with top-k probabilities."""
        from .components import CheckedImage  # a path: only the header is read before the checks
        return ([CheckedImage(type="filepath", image_mode=None, label="image")],
                gr.Label(num_top_classes=self.k, label="prediction"))

    def check(self, img: Any) -> list[str | None]:
        """Missing, not an image, or over MAX_PIXELS."""
        if img is None:
            return ["no image given: upload or paste an image"]
        try:
            _image_header(img)
        except ValueError as e:
            return [str(e)]
        return [None]

    def item(self, img: Any) -> Image.Image:
        """The RGB image."""
        return open_image(img)

    def format(self, decoded: Any, probs: torch.Tensor, x: Any = None) -> dict[str, float]:
        """``{label: probability}`` for the top k labels."""
        vocab = _vocab(self.learner)
        top = torch.topk(probs.float(), min(self.k, len(vocab)))
        return {vocab[i]: float(p) for p, i in zip(top.values.tolist(), top.indices.tolist())}

    def example(self) -> Image.Image:
        """A grey image."""
        return Image.new("RGB", (64, 64), (128, 128, 128))


class MultiLabelTask(ImageTask):
    """Multi-label image classifier: the labels over the loss's threshold, with their probabilities."""

    def components(self, gr: Any) -> tuple[list, Any]:
        """An image upload; the predicted labels with probabilities."""
        inputs, _ = super().components(gr)
        return inputs, gr.Label(label="labels over the threshold")

    def format(self, decoded: Any, probs: torch.Tensor, x: Any = None) -> dict[str, float]:
        """``{label: probability}`` for each label the learner predicts (its loss's threshold)."""
        vocab = _vocab(self.learner)
        return {vocab[i]: float(probs[i]) for i in torch.as_tensor(decoded).nonzero().flatten().tolist()}


class SegmentationTask(ImageTask):
    """Segmentation: the predicted mask, one layer per code present, over the image as the model saw it."""

    with_input = True

    def components(self, gr: Any) -> tuple[list, Any]:
        """An image upload; an annotated image (the mask over the image)."""
        inputs, _ = super().components(gr)
        return inputs, gr.AnnotatedImage(label="mask")

    def format(self, decoded: Any, probs: torch.Tensor, x: Any = None) -> tuple:
        """``(image, [(mask of code c, code name) for each code present])`` at the model's input size."""
        codes = _vocab(self.learner)
        mask = torch.as_tensor(decoded).cpu().numpy()
        img = _as_uint8_image(x, mask.shape)
        layers = [((mask == c).astype(np.float32), codes[c] if c < len(codes) else str(c)) for c in np.unique(mask)]
        return img, layers


def _as_uint8_image(x: Any, shape: tuple) -> np.ndarray:
    """A decoded model input (C x H x W tensor) as an H x W x 3 uint8 array; grey when there is none."""
    if x is None:
        return np.full((*shape, 3), 128, np.uint8)
    t = torch.as_tensor(x).detach().cpu()
    if t.is_floating_point():
        t = (t.clamp(0, 1) * 255).round()
    t = t.to(torch.uint8)
    t = t.expand(3, *t.shape[-2:]) if t.shape[0] == 1 else t[:3]
    return t.permute(1, 2, 0).numpy()


class TextTask(Task):
    """Text classifier: a text box; top-k labels with probabilities."""

    def components(self, gr: Any) -> tuple[list, Any]:
        """A text box; a label with top-k probabilities."""
        return [gr.Textbox(label="text", lines=4)], gr.Label(num_top_classes=self.k, label="prediction")

    def check(self, text: Any) -> list[str | None]:
        """Missing or blank text."""
        if text is None or not isinstance(text, str) or not text.strip():
            return [f"the text is empty ({text!r}): type or paste the text to classify"]
        return [None]

    def item(self, text: str) -> str:
        """The text."""
        return text

    format = ImageTask.format

    def predict(self, items: list) -> list[tuple]:
        """Batched by token count: padding a shorter text changes an RNN's answer, so only equal lengths share a pass."""
        lengths = [len(ids) for ids in self.learner.dls.encoder.encode(list(items))]
        out: list = [None] * len(items)
        for n in dict.fromkeys(lengths):
            idx = [i for i, m in enumerate(lengths) if m == n]
            for i, res in zip(idx, predict_items(self.learner, [items[i] for i in idx])):
                out[i] = res
        return out

    def example(self) -> str:
        """A short text."""
        return "an example"


class TabularTask(Task):
    """Tabular: a form with a dropdown per categorical column (its categories) and a number per continuous one."""

    def __init__(self, learner: Any, k: int = 5) -> None:
        super().__init__(learner, k)
        dls = learner.dls
        flags = {f"{n}_na" for p in dls.procs if getattr(p, "add_col", False) for n in getattr(p, "na_dict", {})}
        self.cats = [c for c in dls.cat_names if c not in flags]  # <col>_na flags are computed, not asked
        self.conts = list(dls.cont_names)
        self.choices = {c: {str(v): _native(v) for v in list(dls.classes[c]) if str(v) != "#na#"} for c in self.cats}

    def components(self, gr: Any) -> tuple[list, Any]:
        """Dropdowns and numbers named after the columns; a label (classifier) or a number (regression)."""
        inputs = [gr.Dropdown(choices=list(self.choices[c]), label=str(c)) for c in self.cats]
        inputs += [gr.Number(label=str(c)) for c in self.conts]
        vocab = self.learner.dls.vocab
        out = gr.Label(num_top_classes=self.k, label="prediction") if vocab is not None else gr.JSON(label="prediction")
        return inputs, out

    def check(self, *values: Any) -> list[str | None]:
        """A missing field, an unknown category or a non-number, named by its column."""
        msgs: list[str | None] = []
        for name, v in zip(self.cats + self.conts, values):
            if v is None or (isinstance(v, str) and not v.strip()):
                msgs.append(f"the field {name!r} is missing: fill it in")
            elif name in self.choices and str(v) not in self.choices[name]:
                some = list(self.choices[name])[:5]
                msgs.append(f"{v!r} is not a category of {name!r} seen in training (e.g. {some})")
            elif name not in self.choices and not _is_number(v):
                msgs.append(f"the field {name!r} must be a number, got {v!r}")
            else:
                msgs.append(None)
        return msgs

    def item(self, *values: Any) -> pd.Series:
        """The row as a Series (categories with their training types, numbers as floats)."""
        row = {c: self.choices[c][str(v)] for c, v in zip(self.cats, values)}
        row.update({c: float(v) for c, v in zip(self.conts, values[len(self.cats):])})
        return pd.Series(row, dtype=object)

    def format(self, decoded: Any, probs: torch.Tensor, x: Any = None) -> Any:
        """Top-k ``{label: probability}`` for a classifier, the predicted value(s) for a regression."""
        if self.learner.dls.vocab is not None:
            return ImageTask.format(self, decoded, probs)
        out = torch.as_tensor(decoded).float().flatten().tolist()
        return out[0] if len(out) == 1 else out

    def example(self) -> pd.Series:
        """The first category of each column, zero for each number."""
        return self.item(*[next(iter(self.choices[c]), None) for c in self.cats], *[0.0] * len(self.conts))


class CollabTask(TabularTask):
    """Collab: a user and an item picker; the predicted rating."""

    def components(self, gr: Any) -> tuple[list, Any]:
        """User and item dropdowns (filterable); the rating."""
        inputs = [gr.Dropdown(choices=list(self.choices[c]), label=str(c), filterable=True) for c in self.cats]
        return inputs, gr.Number(label="predicted rating")


def _native(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _is_number(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


TASKS = {"image": ImageTask, "multilabel": MultiLabelTask, "segmentation": SegmentationTask, "text": TextTask,
         "tabular": TabularTask, "collab": CollabTask}


def task_for(learner: Any, k: int = 5) -> Task:
    """The task serving ``learner`` (see ``serve_kind``)."""
    return TASKS[serve_kind(learner)](learner, k)
