"""``learnkit serve``: load an export once and launch its Gradio app (127.0.0.1 unless told otherwise).

``launch`` adds one guard to Gradio's server: a call to the prediction API whose body isn't JSON gets a 415
naming the content type it needs (FastAPI would answer a binary body with a 500).
"""
from __future__ import annotations

import re
from typing import Any

from ..export import load_learner
from .app import gradio_app

_API_CALL = re.compile(r"/gradio_api/(call|run|queue/join)(/|$)")


class JsonBodyOnly:
    """ASGI middleware: 415 for a POST to Gradio's prediction routes whose Content-Type isn't JSON."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Refuse the request or pass it on."""
        if scope["type"] == "http" and scope["method"] == "POST" and _API_CALL.search(scope["path"]):
            ctype = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                from starlette.responses import JSONResponse
                detail = (f"the prediction API takes a JSON body (Content-Type: application/json), got "
                          f"{ctype.decode('latin-1') or 'no content type'!r}: upload files to /gradio_api/upload "
                          f"and send {{\"data\": [...]}}, or use gradio_client")
                await JSONResponse({"detail": detail}, status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def launch(demo: Any, host: str = "127.0.0.1", port: int | None = None, block: bool = True, **kwargs: Any) -> Any:
    """Launch a built app with the JSON-body guard; ``block=False`` returns ``(app, url, share_url)`` at once."""
    from starlette.middleware import Middleware
    return demo.launch(server_name=host, server_port=port, show_error=True, prevent_thread_lock=not block,
                       app_kwargs={"middleware": [Middleware(JsonBodyOnly)]}, **kwargs)


def serve(fname: str, port: int = 7860, host: str = "127.0.0.1", runtime: str = "torch", max_batch_size: int = 16,
          max_wait: float = 0.01) -> None:
    """Load ``fname`` (without pickle) and serve its app on ``host:port`` until interrupted.

    ``runtime='onnx'``: the model's forward runs in ONNX Runtime (see ``learnkit.serve.onnx_runtime``).
    """
    learn = load_learner(fname)
    if runtime == "onnx":
        from .onnx_runtime import use_onnx_runtime
        use_onnx_runtime(learn)
    elif runtime != "torch":
        raise ValueError(f"unknown runtime {runtime!r}: use 'torch' or 'onnx'")
    launch(gradio_app(learn, max_batch_size=max_batch_size, max_wait=max_wait), host=host, port=port)
