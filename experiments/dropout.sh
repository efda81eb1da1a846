#!/usr/bin/env bash
# --dropout 0.5 in the classifiers' hidden layers: the bound with it, DANN with it, then DIRT-T with
# and without it (RESULTS.md, 'Dropout').
source "$(dirname "$0")/lib.sh"
row target-only-dropout --method target-only --dropout 0.5 --seeds 0
row target-only-dropout-augment --method target-only --dropout 0.5 --augment --seeds 0
row dann-dropout --method dann --dropout 0.5 --seeds 0 1
row dirt-t-ema-dropout --method dirt-t --init "$RUNS/dann-dropout/seed{seed}" --dropout 0.5 --ema 0.998 --epochs 50 --seeds 0 1
row dirt-t-ema-after-dropout --method dirt-t --init "$RUNS/dann-dropout/seed{seed}" --ema 0.998 --epochs 50 --seeds 0 1
