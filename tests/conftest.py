"""Shared test settings: a headless matplotlib backend, offline model hubs, a one-thread fixture for tiny training runs, and a local HTTP server."""
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("MPLBACKEND", "Agg")
# No test reaches a model hub: huggingface_hub reads these once, when it is first imported (timm imports it too).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (and don't fight other processes for cores); restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _Server:
    """Serves ``routes[path]``: bytes, or (kind, bytes) with kind 'short' (fewer bytes than Content-Length) or
    'stall' (waits until the test ends); unknown paths get 404. ``hits`` counts requests per path."""

    def __init__(self):
        self.routes, self.hits, self.release = {}, Counter(), threading.Event()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                srv.hits[path] += 1
                route = srv.routes.get(path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                kind, body = route if isinstance(route, tuple) else ("ok", route)
                if kind == "stall":
                    srv.release.wait(10)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if kind == "ok" else body[: len(body) // 2])
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()
