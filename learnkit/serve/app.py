"""The Gradio app for any export learnkit writes: inputs checked before the queue, predictions batched.

Bad input (no image, not an image, over ``MAX_PIXELS``, empty text, a missing form field) is refused by the
event's validator before the request is queued: the page shows the message on the input and Gradio's HTTP API
(``POST /gradio_api/call/predict``) answers 422 with the messages (a dropdown value outside its choices: Gradio's
own 400). The direct ``/gradio_api/run/predict`` route, which skips validators, is closed
(``api_open=False``): callers use ``/call`` or ``gradio_client``.
"""
from __future__ import annotations

from typing import Any

from .batching import Batcher
from .tasks import MAX_PIXELS, open_image, task_for

__all__ = ["MAX_PIXELS", "gradio_app", "predict_image", "app_predict"]


def predict_image(learner: Any, data: Any, k: int = 5) -> dict[str, float]:
    """Predict one image: ``{label: probability}`` for the top ``k`` labels."""
    task = task_for(learner, k)
    return task.format(*task.predict([open_image(data)])[0])


def app_predict(task: Any, run: Any = None) -> Any:
    """The app's function: input values -> output value; ``ValueError`` naming what is wrong with the input.

    ``run(item)`` predicts one item (default: ``task.predict([item])[0]``; the app passes its ``Batcher``).
    """
    run = run or (lambda item: task.predict([item])[0])

    def fn(*values: Any) -> Any:
        msgs = [m for m in task.check(*values) if m]
        if msgs:
            raise ValueError("; ".join(msgs))
        return task.format(*run(task.item(*values)))

    return fn


def gradio_app(learner: Any, k: int = 5, examples: list | None = None, title: str = "learnkit",
               max_batch_size: int = 16, max_wait: float = 0.01) -> Any:
    """Build (don't launch) a ``gr.Interface`` for a learner of any kind ``learnkit serve`` knows.

    Requests arriving within ``max_wait`` seconds of each other run as one batch of at most ``max_batch_size``
    (``max_batch_size=1``: one at a time).
    """
    import gradio as gr

    task = task_for(learner, k)
    batcher = Batcher(task.predict, max_batch_size, max_wait)
    predict = app_predict(task, batcher)

    def validator(*values: Any) -> Any:
        checks = [gr.validate(m is None, m or "") for m in task.check(*values)]
        return checks if len(checks) > 1 else checks[0]  # Gradio reads a one-input validator's answer unwrapped

    def fn(*values: Any) -> Any:
        try:
            return predict(*values)
        except ValueError as e:  # a caller that skipped the validator
            raise gr.Error(str(e)) from None

    inputs, output = task.components(gr)
    demo = gr.Interface(fn=fn, inputs=inputs, outputs=output, examples=examples, title=title, api_name="predict",
                        validator=validator, concurrency_limit=max(2 * max_batch_size, 8), flagging_mode="never")
    demo.batcher = batcher  # for benchmarks and tests: demo.batcher.batch_sizes
    return demo.queue(api_open=False)
