#!/usr/bin/env bash
# The recommended recipe: DANN, then DIRT-T's refinement of each seed's DANN run (50 epochs), with
# and without --ema 0.998 (RESULTS.md, 'DIRT-T'). About 1 h a refinement on a 2-core CPU.
source "$(dirname "$0")/lib.sh"
row dann --method dann --seeds 0 1 2
row dirt-t --method dirt-t --init "$RUNS/dann/seed{seed}" --epochs 50 --seeds 0 1 2
row dirt-t-ema --method dirt-t --init "$RUNS/dann/seed{seed}" --ema 0.998 --epochs 50 --seeds 0 1 2
