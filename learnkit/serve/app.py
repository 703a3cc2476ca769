"""A Gradio app for an image classifier learner: top-k labels with probabilities, bad input refused clearly."""
from __future__ import annotations

import io
import threading
from typing import Any

import torch
from PIL import Image

MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (a 20000x20000 upload is 400M pixels)
_PREDICT = threading.Lock()  # a Learner keeps per-call state (dl, pred): one prediction at a time per process


def _open_image(data: Any) -> Image.Image:
    """Open an upload (path, bytes or PIL image) as RGB, refusing non-images and images over MAX_PIXELS."""
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
    return img.convert("RGB")


def predict_image(learner: Any, data: Any, k: int = 5) -> dict[str, float]:
    """Predict one image: ``{label: probability}`` for the top ``k`` labels."""
    img = _open_image(data)
    with _PREDICT, torch.inference_mode():
        _, _, probs = learner.predict(img)
    vocab = [str(v) for v in learner.dls.vocab]
    top = torch.topk(probs.float(), min(k, len(vocab)))
    return {vocab[i]: float(p) for p, i in zip(top.values.tolist(), top.indices.tolist())}


def gradio_app(learner: Any, k: int = 5, examples: list | None = None, title: str = "learnkit") -> Any:
    """Build (don't launch) a ``gr.Interface`` for an image-classifier learner."""
    import gradio as gr

    def fn(img: Any) -> dict[str, float]:
        if img is None:
            raise gr.Error("no image given: upload or paste an image")
        try:
            return predict_image(learner, img, k)
        except ValueError as e:
            raise gr.Error(str(e)) from None

    # type="pil": the upload is handed over in memory, not through a cache file that identical uploads share
    return gr.Interface(fn=fn, inputs=gr.Image(type="pil", label="image"),
                        outputs=gr.Label(num_top_classes=k, label="prediction"),
                        examples=examples, title=title, api_name="predict")
