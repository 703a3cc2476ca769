"""``learnkit serve``: load an export once and launch its Gradio app (127.0.0.1 unless told otherwise)."""
from __future__ import annotations

from ..export import load_learner
from .app import gradio_app


def serve(fname: str, port: int = 7860, host: str = "127.0.0.1") -> None:
    """Load ``fname`` (without pickle) and serve its app on ``host:port`` until interrupted."""
    learn = load_learner(fname)
    gradio_app(learn).launch(server_name=host, server_port=port, show_error=True)
