"""Tabular and collaborative filtering: learnkit against fastai 2.8.12 in the same run (speed and accuracy).

Tabular (``--task tabular``): the adult sample (32,561 rows) with the lesson's columns and procs
(``[Categorify, FillMissing, Normalize]``, bs 64, ``tabular_learner(dls, metrics=accuracy)``,
``fit_one_cycle(1)``), on two splits: fastai's tutorial ``valid_idx=range(800, 1000)`` and a random 20%
(seeded, the same rows on both sides). Timed: one epoch of iterating the training loader (median of
``--rounds``), and one fit epoch of a fresh learner after an untimed warm-up fit in the same process.

Collab (``--task collab``): MovieLens 100K with titles (``u.data`` joined with ``u.item``), random 20% split
(seeded, same rows on both sides), ``collab_learner(dls, n_factors=50, y_range=(0, 5.5))``,
``fit_one_cycle(5, 5e-3, wd=0.1)``: validation MSE and time per epoch.

fastai runs in a subprocess with ``--fastai-python`` (default ``/work/fastai-venv/bin/python``); when it is
missing the comparison is skipped (and said so). Both sides use ``--threads`` torch threads.

    python benchmarks/tabular.py --task both
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]

# The measuring code is the same text for both libraries: only the import line differs (the lesson contract).
TABULAR = """
import json, sys, time, torch
torch.set_num_threads({threads})
df = pd.read_csv({csv!r})
out = {{}}
for split_name, valid_idx in (("tutorial", list(range(800, 1000))), ("random20", {random_idx})):
    set_seed(0)
    t0 = time.perf_counter()
    dls = TabularDataLoaders.from_df(df, path='.', procs=[Categorify, FillMissing, Normalize], cat_names={cat!r},
                                     cont_names={cont!r}, y_names='salary', valid_idx=valid_idx, bs=64)
    t_build = time.perf_counter() - t0
    iters = []
    for _ in range({rounds}):
        t0 = time.perf_counter()
        n = 0
        for b in dls.train:
            n += 1
        iters.append(time.perf_counter() - t0)
    if split_name == "tutorial":  # warm-up (first-call costs of torch and the library), not timed
        warm = tabular_learner(dls, metrics=accuracy)
        with warm.no_bar(), warm.no_logging():
            warm.fit_one_cycle(1)
    set_seed(0)
    learn = tabular_learner(dls, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        t0 = time.perf_counter()
        learn.fit_one_cycle(1)
        t_fit = time.perf_counter() - t0
        res = learn.validate()
    out[split_name] = dict(build_s=t_build, iter_epoch_s=sorted(iters)[len(iters) // 2], batches=n,
                           fit_epoch_s=t_fit, valid_loss=float(res[0]), accuracy=float(res[1]))
print("RESULT" + json.dumps(out))
"""

COLLAB = """
import json, sys, time, torch
torch.set_num_threads({threads})
ratings = pd.read_csv({udata!r}, delimiter='\\t', header=None, names=['user', 'movie', 'rating', 'timestamp'])
movies = pd.read_csv({uitem!r}, delimiter='|', encoding='latin-1', usecols=(0, 1), names=('movie', 'title'),
                     header=None)
ratings = ratings.merge(movies)
ratings = ratings[['user', 'title', 'rating']]
set_seed({seed})
# learnkit's seeded RandomSplitter picks the same rows as fastai's: the same split on both sides
dls = CollabDataLoaders.from_df(ratings, item_name='title', bs=64, valid_pct=0.2, seed={seed})
runs = []
for init_seed in {init_seeds}:  # the split is fixed; the model's initialisation and batch order vary
    set_seed(init_seed)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        t0 = time.perf_counter()
        learn.fit_one_cycle(5, 5e-3, wd=0.1)
        t_fit = time.perf_counter() - t0
        res = learn.validate()
    runs.append(dict(seed=init_seed, fit_s=t_fit, epoch_s=t_fit / 5, valid_mse=float(res[0])))
out = dict(runs=runs, epoch_s=sorted(r["epoch_s"] for r in runs)[len(runs) // 2],
           valid_mse=sum(r["valid_mse"] for r in runs) / len(runs), n_valid=len(dls.valid.dataset))
print("RESULT" + json.dumps(out))
"""

IMPORTS = {"learnkit": {"tabular": "from learnkit.tabular.all import *", "collab": "from learnkit.collab.all import *"},
           "fastai": {"tabular": "from fastai.tabular.all import *", "collab": "from fastai.collab import *\n"
                                                                            "from fastai.tabular.all import *"}}


def run(python: str, lib: str, task: str, body: str) -> dict:
    """Run one side in a subprocess; returns its RESULT dict."""
    code = IMPORTS[lib][task] + "\n" + textwrap.dedent(body)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{lib} side failed:\n{p.stderr[-3000:]}")
    line = next(l for l in p.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def random_idx(n: int, pct: float, seed: int) -> list[int]:
    """A seeded random ``pct`` of row positions (the same list for both libraries)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=g)[: int(pct * n)].tolist())


def main() -> None:
    """Run the comparisons and write a JSON result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("tabular", "collab", "both"), default="both")
    p.add_argument("--fastai-python", default="/work/fastai-venv/bin/python")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="loader iteration rounds (median reported)")
    p.add_argument("--seed", type=int, default=42, help="seed of the random validation split")
    p.add_argument("--init-seeds", default="0,1,2", help="collab: one fit per seed of the model's initialisation")
    p.add_argument("--adult", default=str(DATA / "adult_sample" / "adult.csv"))
    p.add_argument("--ml100k", default=str(DATA / "ml-100k"))
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "tabular.json"))
    a = p.parse_args()
    have_fastai = Path(a.fastai_python).exists() and subprocess.run(
        [a.fastai_python, "-c", "import fastai"], capture_output=True).returncode == 0
    if not have_fastai:
        print(f"fastai not found at {a.fastai_python}: measuring learnkit only, no comparison "
              f"(pass --fastai-python PATH to compare).")
    sides = ["learnkit"] + (["fastai"] if have_fastai else [])
    results: dict = {"threads": a.threads, "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if a.task in ("tabular", "both"):
        import pandas as pd
        n = len(pd.read_csv(a.adult))
        body = TABULAR.format(threads=a.threads, csv=a.adult, random_idx=random_idx(n, 0.2, a.seed), cat=CAT,
                              cont=CONT, rounds=a.rounds)
        tab = {lib: run(sys.executable if lib == "learnkit" else a.fastai_python, lib, "tabular", body)
               for lib in sides}
        results["tabular"] = tab
        for split in ("tutorial", "random20"):
            for lib in sides:
                r = tab[lib][split]
                print(f"tabular {split:9s} {lib:9s} loader epoch {r['iter_epoch_s'] * 1000:8.1f} ms ({r['batches']} "
                      f"batches)  fit epoch {r['fit_epoch_s']:6.2f} s  accuracy {r['accuracy']:.4f}")
            if have_fastai:
                lk, fa = tab["learnkit"][split], tab["fastai"][split]
                print(f"tabular {split:9s} speed-up: loader epoch {fa['iter_epoch_s'] / lk['iter_epoch_s']:.1f}x, "
                      f"fit epoch {fa['fit_epoch_s'] / lk['fit_epoch_s']:.1f}x")
    if a.task in ("collab", "both"):
        body = COLLAB.format(threads=a.threads, udata=str(Path(a.ml100k) / "u.data"),
                             uitem=str(Path(a.ml100k) / "u.item"), seed=a.seed,
                             init_seeds=[int(v) for v in a.init_seeds.split(",")])
        col = {lib: run(sys.executable if lib == "learnkit" else a.fastai_python, lib, "collab", body)
               for lib in sides}
        results["collab"] = col
        for lib in sides:
            r = col[lib]
            per = ", ".join(f"{x['valid_mse']:.4f}" for x in r["runs"])
            print(f"collab ml-100k {lib:9s} epoch {r['epoch_s']:6.2f} s (median)  valid MSE {r['valid_mse']:.4f} "
                  f"(mean of seeds {a.init_seeds}: {per}; {r['n_valid']} valid ratings)")
        if have_fastai:
            print(f"collab speed-up: epoch {col['fastai']['epoch_s'] / col['learnkit']['epoch_s']:.1f}x")
    results["load_avg_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))
    print(f"load average (1/5/15 min) at start {results['load_avg_start']}, at end {results['load_avg_end']}; "
          f"wrote {a.out}")


if __name__ == "__main__":
    main()
