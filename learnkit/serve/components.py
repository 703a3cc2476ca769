"""A Gradio image input that hands unreadable uploads to the app's validator instead of failing in Gradio.

``gr.Image`` opens each upload with PIL while preprocessing it, so a file that isn't an image (or one over PIL's
decompression-bomb limit) fails there with a bare 400 before the app's checks run. ``CheckedImage`` passes such an
upload on as its path, and the validator refuses it with a clear message (a 422 from the HTTP API). It is a
template of ``gr.Image`` (``is_template``: the page draws it with the image component). Gradio writes a stub
(``components.pyi``) beside every component class it sees defined; the one shipped here is that stub, so
importing this module rewrites nothing.
"""
from __future__ import annotations

from typing import Any

import gradio as gr


class CheckedImage(gr.Image):
    """``gr.Image`` whose unreadable uploads reach the validator as paths (use ``type='filepath', image_mode=None``)."""

    is_template = True  # no __init__ of its own: Gradio reads the page's props off gr.Image's signature

    def preprocess(self, payload: Any) -> str | None:
        """The upload's path; only its header has been read (unreadable files are left to the validator)."""
        try:
            return super().preprocess(payload)
        except Exception:  # PIL's errors for non-images and huge images: the validator names them
            path = getattr(payload, "path", None)
            if path is None:
                raise gr.Error("the upload could not be read as an image: send a JPEG, PNG or WebP file") from None
            return str(path)
