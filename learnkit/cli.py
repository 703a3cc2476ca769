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
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        from .demo import run_demo
        result = run_demo(epochs=args.epochs, out=args.out)
        return 0 if result["accuracy"] >= 0.85 else 1
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
