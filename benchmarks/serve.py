"""Latency p50/p99 and requests/s of the Gradio app on 127.0.0.1 for 1, 8, 32 clients vs learn.predict in a loop.

Usage: python benchmarks/serve.py export.pkl image.jpg [--requests 64]
"""
from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client, handle_file
from PIL import Image

from learnkit.export import load_learner
from learnkit.serve import gradio_app


def _stats(lat: list[float], wall: float) -> str:
    lat = sorted(lat)
    return (f"p50 {statistics.median(lat) * 1e3:7.1f} ms  p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3:7.1f} ms"
            f"  {len(lat) / wall:6.1f} req/s")


def main() -> None:
    """Run the bounded load and print one line per setting."""
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("image")
    ap.add_argument("--requests", type=int, default=64, help="requests per setting (bounded)")
    a = ap.parse_args()
    learn = load_learner(a.export)
    img = Image.open(a.image).convert("RGB")
    lat = []
    t0 = time.perf_counter()
    for _ in range(a.requests):
        t = time.perf_counter()
        learn.predict(img)
        lat.append(time.perf_counter() - t)
    print(f"learn.predict loop      {_stats(lat, time.perf_counter() - t0)}")
    app = gradio_app(learn)
    _, url, _ = app.queue(default_concurrency_limit=32).launch(server_name="127.0.0.1", prevent_thread_lock=True,
                                                             quiet=True)
    try:
        for n in (1, 8, 32):
            clients = [Client(url, verbose=False) for _ in range(n)]

            def one(i: int) -> float:
                t = time.perf_counter()
                clients[i % n].predict(handle_file(a.image), api_name="/predict")
                return time.perf_counter() - t

            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                lat = list(pool.map(one, range(a.requests)))
            print(f"server, {n:2d} clients     {_stats(lat, time.perf_counter() - t0)}")
    finally:
        app.close()


if __name__ == "__main__":
    main()
