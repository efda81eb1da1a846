#!/usr/bin/env bash
# Self-ensembling as a refinement of a DANN-then-DIRT-T model, for as many epochs as DIRT-T's own
# refinement phase at full size (50). Full size: from the bundled DIRT-T model (seed 0), about 1 h on a
# 2-core CPU, one thread. Short schedule (--limit 7000): DANN, DIRT-T, then self-ensembling, seeds 0-2,
# about 30 min a seed; the first two rows are short_schedule.sh's. The same recipe, unchanged, on synth ->
# MNIST-M (synth is rendered first if absent, 30 s).
source "$(dirname "$0")/lib.sh"
short=(--limit 7000)
row self-ensemble-from-dirt-t --method self-ensemble --init mnist-mnist_m-dirt-t --epochs 50 --seeds 0
row short-dann --method dann --seeds 0 1 2 "${short[@]}"
row short-dirt-t --method dirt-t --init "$RUNS/short-dann/seed{seed}" --seeds 0 1 2 "${short[@]}"
row short-self-ensemble-from-dirt-t --method self-ensemble --init "$RUNS/short-dirt-t/seed{seed}" --epochs 50 \
  --seeds 0 1 2 "${short[@]}"
# the same refinement from DANN alone: what DIRT-T's phase adds
row short-self-ensemble-from-dann --method self-ensemble --init "$RUNS/short-dann/seed{seed}" --epochs 50 \
  --seeds 0 1 2 "${short[@]}"
# the recipe fixed on MNIST -> MNIST-M, carried unchanged to synth -> MNIST-M
synth=(--source synth "${short[@]}")
row short-synth-dann --method dann --seeds 0 1 2 "${synth[@]}"
row short-synth-dirt-t --method dirt-t --init "$RUNS/short-synth-dann/seed{seed}" --seeds 0 1 2 "${synth[@]}"
row short-synth-self-ensemble-from-dirt-t --method self-ensemble --init "$RUNS/short-synth-dirt-t/seed{seed}" \
  --epochs 50 --seeds 0 1 2 "${synth[@]}"
# and to MNIST -> synth, where DANN and DIRT-T fail (.30-.35) and self-ensembling alone reaches .91
to_synth=(--target synth "${short[@]}")
row short-mnist-synth-dann --method dann --seeds 0 1 2 "${to_synth[@]}"
row short-mnist-synth-dirt-t --method dirt-t --init "$RUNS/short-mnist-synth-dann/seed{seed}" --seeds 0 1 2 "${to_synth[@]}"
row short-mnist-synth-self-ensemble-from-dirt-t --method self-ensemble --init "$RUNS/short-mnist-synth-dirt-t/seed{seed}" \
  --epochs 50 --seeds 0 1 2 "${to_synth[@]}"
