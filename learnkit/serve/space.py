"""``learnkit space``: write a Hugging Face Space folder (app.py, pinned requirements, the export, README)."""
from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

from ..utils import atomic_write

_APP = '''"""Hugging Face Space app written by `learnkit space`."""
from learnkit.export import load_learner
from learnkit.serve import gradio_app

demo = gradio_app(load_learner({name!r}))

if __name__ == "__main__":
    demo.launch()
'''


def write_space(fname: str | os.PathLike, out: str | os.PathLike, title: str = "learnkit demo") -> Path:
    """Write a Space folder for export ``fname`` into ``out``; refuses to overwrite any file already there."""
    src, out = Path(fname), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"no export at {str(src)!r}: write one with learn.export()")
    files = {
        "app.py": _APP.format(name=src.name),
        "requirements.txt": "".join(f"{p}=={version(p)}\n" for p in ("learnkit", "torch", "gradio", "pillow")),
        "README.md": (f"---\ntitle: {title}\nsdk: gradio\nsdk_version: {version('gradio')}\napp_file: app.py\n---\n\n"
                      f"# {title}\n\nA learnkit model's Gradio app, served by `app.py` from `{src.name}`.\n"),
    }
    taken = [n for n in [*files, src.name] if (out / n).exists()]
    if taken:
        raise FileExistsError(f"{str(out)!r} already has {taken}: not overwriting them; pick an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / src.name, "wb") as f:
        f.write(src.read_bytes())
    for name, text in files.items():
        with atomic_write(out / name, "w") as f:
            f.write(text)
    return out
