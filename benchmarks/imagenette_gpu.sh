#!/usr/bin/env bash
# The Imagenette runs of benchmarks/README.md on a GPU machine, one JSON result per run in OUT_DIR.
#
#   bash benchmarks/imagenette_gpu.sh anchor OUT_DIR   # learnkit as fastai ran it, learnkit's fast path, fastai itself
#   bash benchmarks/imagenette_gpu.sh fast OUT_DIR     # the fast recipe and the leaderboard recipe
#
# Data: DATA (default data_local/imagenette2-128, a git-ignored copy of ../shared/data/imagenette2-128).
# EXTRA: flags added to every run (a smoke test: EXTRA="--limit 2 --epochs 1 --arch xresnet18 --size 32").
# fastai and its dependencies, when not installed, are taken from wheels in .whl/ (see benchmarks/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:?anchor or fast}
out=${2:?output folder}
data=${DATA:-data_local/imagenette2-128}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import fastai" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
run() {  # name, then the flags of benchmarks/imagenette.py
    local name=$1; shift
    echo "== $name: $*"
    # shellcheck disable=SC2086  # EXTRA is a list of flags
    python3 benchmarks/imagenette.py --data "$data" --out "$out/$name.json" "$@" ${EXTRA:-} 2>&1 | tee "$out/$name.log"
}
rc=0
case "$which" in
    anchor)
        run anchor_learnkit --recipe anchor || rc=1
        run anchor_fastai --recipe anchor --fastai || rc=1
        run anchor_learnkit_fast_path --recipe anchor --channels-last --preload || rc=1
        ;;
    fast)
        run fast --recipe fast || rc=1
        run leaderboard_preload --recipe leaderboard --channels-last --preload || rc=1
        ;;
    *) echo "unknown set $which: anchor or fast" >&2; exit 2 ;;
esac
exit $rc
