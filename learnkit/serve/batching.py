"""Request batching: items arriving together within a short window run through the model as one batch.

``predict_items(learn, items)`` is ``learn.predict`` for several items at once (one ``test_dl``, one
``get_preds`` in ``torch.inference_mode``): item ``i`` gets ``(decoded, probabilities[, model input])``
equal to what ``learn.predict(items[i])`` computes. ``Batcher(run)`` is what a server calls from many
threads: each caller blocks on its own result while one worker thread gathers the items that arrive within
``max_wait`` seconds of the first (at most ``max_batch_size``), runs them together, and hands each caller its
own answer; if a batch fails, its items are rerun one by one so one bad item fails only its own caller.
Gradio's own ``batch=True`` is not used: it has no wait window and one failing item fails the whole batch.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any, Callable

import torch

PREDICT_LOCK = threading.Lock()  # a Learner keeps per-call state (dl, pred): one pass at a time per process


def predict_items(learn: Any, items: list, with_input: bool = False) -> list[tuple]:
    """``(decoded, probabilities[, decoded model input])`` per item, from one batched pass (as ``learn.predict``)."""
    if hasattr(learn.dls, "decode_prediction"):  # tabular / collab loaders take a frame of rows
        dl = learn.dls.test_dl(items)
    else:
        dl = learn.dls.test_dl(list(items), num_workers=0)
    with PREDICT_LOCK, torch.inference_mode(), learn.no_bar():
        res = learn.get_preds(dl=dl, with_decoded=True, with_input=with_input)
    if with_input:
        inputs, preds, _, decoded = res
        xs = [s[0] for s in dl.decode_batch((inputs,))]
        return [(decoded[i], preds[i], xs[i]) for i in range(len(items))]
    preds, _, decoded = res
    return [(decoded[i], preds[i]) for i in range(len(items))]


class Batcher:
    """Call ``run(items) -> results`` on batches of the items submitted together from many threads."""

    def __init__(self, run: Callable[[list], list], max_batch_size: int = 16, max_wait: float = 0.01,
                 idle: float = 5.0) -> None:
        if max_batch_size < 1 or max_wait < 0:
            raise ValueError(f"Batcher needs max_batch_size >= 1 and max_wait >= 0, got {max_batch_size}, {max_wait}")
        self.run, self.max_batch_size, self.max_wait, self.idle = run, max_batch_size, max_wait, idle
        self.batch_sizes: Counter = Counter()  # how many batches of each size ran (for tests and benchmarks)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def __call__(self, item: Any) -> Any:
        """Submit one item and wait for its result (its own exception if it failed)."""
        fut: Future = Future()
        self._queue.put((item, fut))
        with self._lock:  # the worker exits when idle; start one if none is running
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="learnkit-batcher", daemon=True)
                self._worker.start()
        return fut.result()

    def _loop(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self.idle)]
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch_size:
                left = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list) -> None:
        items, futs = [b[0] for b in batch], [b[1] for b in batch]
        try:
            results = self.run(items)
            self.batch_sizes[len(items)] += 1
        except Exception as e:
            if len(items) == 1:
                futs[0].set_exception(e)
                return
            for one in batch:  # rerun alone: only the bad item's caller gets an error
                self._run([one])
            return
        for fut, res in zip(futs, results):
            fut.set_result(res)
