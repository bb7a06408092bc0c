#!/usr/bin/env bash
# Continue a distillation run on a CUDA machine that has neither the teacher nor the data, within a
# wall-clock budget (a rented GPU box that takes uploads of limited size). Made here, where the teacher
# is installed (README, "Distillation on a GPU box"):
#   python tools/pack_for_gpu.py pack PACK labelled=DATA_DIR unlabelled=UNLABELLED_DIR   (crops + teacher table)
#   python tools/pack_for_gpu.py slim RUN_DIR/last.pt PACK/init.pt                       (the run's state)
# Usage there: continue_on_gpu.sh PACK CONFIG_JSON BUDGET_S OUT
#   PACK: holds part-*.npz, teacher.npz and init.pt (at any depth); CONFIG_JSON: TrainConfig fields, its
#   data_dir/unlabelled_dir under $WORK/data, named as in the pack; BUDGET_S: seconds for everything;
#   OUT gets the last epoch's state (``pack_for_gpu.py slim``: weights, the loss's map and centres, 6 mantissa bits)
#   in 15 MiB pieces, the history and the log: cat state.pt.* > state.pt, then shipping.finalize_run exports
#   it and init_from continues it. The epochs are as many as the budget holds at a 60-step probe's step time.
set -euo pipefail
PACK=$1 CONFIG=$2 BUDGET=$3 OUT=$4
T0=$(date +%s) WORK=${WORK:-/tmp/fc} DEVICE=${DEVICE:-cuda} HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT" "$WORK"
python3 "$HERE/pack_for_gpu.py" unpack "$PACK" "$WORK/data"
INIT=$(find "$PACK" -name init.pt | head -1)
python3 -m facecore.training.train --device "$DEVICE" --out "$WORK/probe" --config "$CONFIG" --quiet \
  --set epochs=1 --set max_steps_per_epoch=60 --set "init_from=\"$INIT\""
EPOCHS=$(python3 - "$CONFIG" "$BUDGET" "$T0" "$WORK/probe/history.csv" "$HERE" <<'EOF'
import json, sys, time
import pandas as pd
sys.path.insert(0, sys.argv[5])  # tools/, beside this script
from facecore.training.train import TrainConfig
from pack_for_gpu import epoch_steps
cfg, budget, t0 = TrainConfig(**json.load(open(sys.argv[1]))), float(sys.argv[2]), float(sys.argv[3])
steps, full = epoch_steps(cfg), epoch_steps(cfg, capped=False)
step_s = float(pd.read_csv(sys.argv[4]).epoch_s.iloc[0]) / min(60, full)  # first steps included: an upper bound
left = budget - (time.time() - t0) - 45  # loading, the export and the copy back
epochs = max(1, int(left // (steps * step_s + 8)))  # + validation, BN calibration, checkpoints (~7 s on an H200)
print(epochs)
print(f"probe: {step_s * 1000:.0f} ms a step, {steps} steps an epoch, {left:.0f} s left: {epochs} epochs", file=sys.stderr)
EOF
)
LEFT=$(( BUDGET - ($(date +%s) - T0) - 30 )); LEFT=$(( LEFT > 60 ? LEFT : 60 ))
timeout "$LEFT" python3 -m facecore.training.train --device "$DEVICE" --out "$WORK/run" --config "$CONFIG" \
  --set epochs="$EPOCHS" --set "init_from=\"$INIT\"" 2>&1 | tee "$OUT/train.log" || true
cp "$WORK/run/history.csv" "$OUT/"
python3 "$HERE/pack_for_gpu.py" slim "$WORK/run/last.pt" "$OUT/state.pt"  # the schedule's end: weights, map, centres
split -b 15M -d "$OUT/state.pt" "$OUT/state.pt." && rm "$OUT/state.pt"
ls -la "$OUT"
