"""Serving an export: a Gradio app (``gradio_app``) and the ``learnkit serve`` command."""
from .app import MAX_PIXELS, gradio_app, predict_image

__all__ = ["MAX_PIXELS", "gradio_app", "predict_image"]
