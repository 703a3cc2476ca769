"""The ``learnkit`` command: ``learnkit demo`` fine-tunes EfficientNet-Lite0 on the shipped Imagenette sample."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``learnkit`` command line."""
    parser = argparse.ArgumentParser(prog="learnkit", description="learnkit command line")
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="fine-tune EfficientNet-Lite0 on the shipped Imagenette sample (offline)")
    demo.add_argument("--epochs", type=int, default=2, help="epochs after the frozen one (default 2)")
    demo.add_argument("--out", default="learnkit_demo", help="folder for the export (default ./learnkit_demo)")
    srv = sub.add_parser("serve", help="serve an export as a Gradio app (and its HTTP API)")
    srv.add_argument("export", help="the export file (learn.export())")
    srv.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                     help="run the model in PyTorch (default) or ONNX Runtime (learnkit[onnx])")
    srv.add_argument("--max-batch-size", type=int, default=16, help="requests batched together at most (default 16)")
    srv.add_argument("--max-wait", type=float, default=0.01,
                     help="seconds a request waits for others to batch with (default 0.01)")
    spc = sub.add_parser("space", help="write a Hugging Face Space folder for an export")
    spc.add_argument("export", help="the export file (learn.export())")
    spc.add_argument("out", help="folder to write (must not already hold the Space's files)")
    args = parser.parse_args(argv)
    if args.cmd == "space":
        from .serve.space import write_space
        print(write_space(args.export, args.out))
        return 0
    if args.cmd == "serve":
        from .serve.server import serve
        serve(args.export, port=args.port, host=args.host, runtime=args.runtime, max_batch_size=args.max_batch_size,
              max_wait=args.max_wait)
        return 0
    if args.cmd == "demo":
        from .demo import run_demo
        result = run_demo(epochs=args.epochs, out=args.out)
        return 0 if result["accuracy"] >= 0.85 else 1
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
