#!/usr/bin/env bash
# Every method on the short schedule: the first 7,000 training images of each domain, 100 epochs of
# 55 steps (RESULTS.md, 'The short schedule'). 5-25 min a run on a 2-core CPU.
source "$(dirname "$0")/lib.sh"
short=(--limit 7000)
row short-source-only --method source-only --seeds 0 1 2 "${short[@]}"
row short-dann --method dann --seeds 0 1 2 "${short[@]}"
row short-dann-ema --method dann --ema 0.998 --seeds 0 1 2 "${short[@]}"
row short-dann-im --method dann-im --seeds 0 1 2 "${short[@]}"
row short-vada --method vada --seeds 0 1 2 "${short[@]}"
row short-vada-ema --method vada --ema 0.998 --seeds 0 1 2 "${short[@]}"
row short-target-only --method target-only --seeds 0 "${short[@]}"
row short-dirt-t --method dirt-t --init "$RUNS/short-dann/seed{seed}" --seeds 0 1 2 "${short[@]}"
row short-self-train --method self-train --init "$RUNS/short-dirt-t/seed{seed}" --augment --ema 0.998 --seeds 0 1 2 "${short[@]}"
