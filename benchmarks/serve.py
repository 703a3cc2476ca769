"""Latency p50/p99 and requests/s of the Gradio app on 127.0.0.1 for 1, 8, 32 clients vs learn.predict in a loop,
for the PyTorch runtime one request at a time, batched, and ONNX Runtime batched; then a soak: 32 clients for
``--soak`` seconds, counting failed requests and the process's RSS at the start and the end.

Usage: python benchmarks/serve.py export.pkl image.jpg [--requests 64] [--soak 60] [--variants torch1,torch,onnx]
Everything (server and clients) runs in this process against 127.0.0.1; the load is bounded.
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from gradio_client import Client, handle_file
from PIL import Image

from learnkit.export import load_learner
from learnkit.serve import gradio_app
from learnkit.serve.server import launch

VARIANTS = {"torch1": ("torch", 1), "torch": ("torch", 16), "onnx1": ("onnx", 1), "onnx": ("onnx", 16)}


def _stats(lat: list[float], wall: float) -> str:
    lat = sorted(lat)
    return (f"p50 {statistics.median(lat) * 1e3:7.1f} ms  p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3:7.1f} ms"
            f"  {len(lat) / wall:6.1f} req/s")


def _learner(export: str, runtime: str):
    learn = load_learner(export)
    if runtime == "onnx":
        from learnkit.serve.onnx_runtime import use_onnx_runtime
        use_onnx_runtime(learn)
    return learn


def _loop(learn, img, n: int, name: str) -> None:
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        learn.predict(img)
        lat.append(time.perf_counter() - t)
    print(f"{name:28s} {_stats(lat, time.perf_counter() - t0)}")


def _load(url: str, image: str, requests: int, name: str) -> None:
    for n in (1, 8, 32):
        clients = [Client(url, verbose=False) for _ in range(n)]

        def one(i: int) -> float:
            t = time.perf_counter()
            clients[i % n].predict(handle_file(image), api_name="/predict")
            return time.perf_counter() - t

        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            lat = list(pool.map(one, range(requests)))
        print(f"{name + f', {n:2d} clients':28s} {_stats(lat, time.perf_counter() - t0)}")


def _soak(url: str, image: str, seconds: float, n: int = 32) -> None:
    proc = psutil.Process(os.getpid())
    clients = [Client(url, verbose=False) for _ in range(n)]
    ok, failed, errors = [0] * n, [0] * n, []
    rss0 = proc.memory_info().rss
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        while time.monotonic() < deadline:
            try:
                clients[i].predict(handle_file(image), api_name="/predict")
                ok[i] += 1
            except Exception as e:  # counted, not raised: the soak reports failures
                failed[i] += 1
                errors.append(repr(e)[:200])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() + 10 <= deadline:
        time.sleep(10)
        samples.append(proc.memory_info().rss // 2**20)
    for t in threads:
        t.join()
    rss1 = proc.memory_info().rss
    print(f"soak {n} clients {seconds:.0f} s: {sum(ok)} ok, {sum(failed)} failed ({sum(ok) / seconds:.1f} req/s); "
          f"RSS {rss0 / 2**20:.0f} MiB -> {rss1 / 2**20:.0f} MiB (every 10 s: {samples})" + (f"; first error {errors[0]}" if errors else ""))


def main() -> None:
    """Run the bounded load and print one line per setting."""
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("image")
    ap.add_argument("--requests", type=int, default=64, help="requests per setting (bounded)")
    ap.add_argument("--soak", type=float, default=0, help="seconds of 32-client load on the batched torch server")
    ap.add_argument("--variants", default="torch1,torch,onnx", help=f"comma-separated, of {list(VARIANTS)}")
    a = ap.parse_args()
    img = Image.open(a.image).convert("RGB")
    looped = set()
    for v in filter(None, a.variants.split(",")):
        runtime, bs = VARIANTS[v]
        learn = _learner(a.export, runtime)
        if runtime not in looped:
            _loop(learn, img, a.requests, f"learn.predict loop ({runtime})")
            looped.add(runtime)
        app = gradio_app(learn, max_batch_size=bs)
        _, url, _ = launch(app, block=False, quiet=True)
        try:
            _load(url, a.image, a.requests, f"{runtime} bs<={bs}")
            sizes = app.batcher.batch_sizes
            print(f"{'':28s} batches run: {dict(sorted(sizes.items()))}")
        finally:
            app.close()
    if a.soak:
        app = gradio_app(_learner(a.export, "torch"))
        _, url, _ = launch(app, block=False, quiet=True)
        try:
            _soak(url, a.image, a.soak)
        finally:
            app.close()


if __name__ == "__main__":
    main()
