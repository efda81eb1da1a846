#!/usr/bin/env bash
# --augment (shifts and colour jitter) in each phase, seed 0 (and 1 for the bound): it lifts the
# trained-on-target bound and lowers both adaptation phases (RESULTS.md, 'Augmentation').
source "$(dirname "$0")/lib.sh"
row target-only-augment --method target-only --augment --seeds 0 1
row dann-augment --method dann --augment --seeds 0
row dann --method dann --seeds 0 1 2
row dirt-t-ema-augment --method dirt-t --init "$RUNS/dann/seed{seed}" --ema 0.998 --augment --epochs 50 --seeds 0
