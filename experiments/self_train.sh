#!/usr/bin/env bash
# A third phase: a fresh, augmented student learns the labels that each seed's DIRT-T model (with
# EMA) gives the target images (RESULTS.md, 'Self-training').
source "$(dirname "$0")/lib.sh"
row dann --method dann --seeds 0 1 2
row dirt-t-ema --method dirt-t --init "$RUNS/dann/seed{seed}" --ema 0.998 --epochs 50 --seeds 0 1 2
row self-train --method self-train --init "$RUNS/dirt-t-ema/seed{seed}" --augment --ema 0.998 --seeds 0 1 2
