"""Serving an export: a Gradio app (``gradio_app``) for every kind of export, and the ``learnkit serve`` command."""
from .app import MAX_PIXELS, app_predict, gradio_app, predict_image
from .batching import Batcher, predict_items
from .tasks import serve_kind, task_for

__all__ = ["MAX_PIXELS", "Batcher", "app_predict", "gradio_app", "predict_image", "predict_items", "serve_kind",
           "task_for"]
