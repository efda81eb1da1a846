#!/usr/bin/env bash
# How well each label-free score ranks finished runs by their target accuracy (RESULTS.md,
# 'Label-free scores'): short MNIST -> MNIST-M runs of several methods, seeds and lengths (the first
# 7,000 training images of each domain), then every run's scores and target test accuracy, and each
# score's rank correlation with that accuracy. About 25 min on a 2-core CPU with two runs side by side.
source "$(dirname "$0")/lib.sh"
short=(--limit 7000)
row lf-source-only-e10 --method source-only --epochs 10 --seeds 0 1 2 "${short[@]}"
row lf-source-only-e30 --method source-only --epochs 30 --seeds 0 1 2 "${short[@]}"
row lf-dann-e10 --method dann --epochs 10 --seeds 0 1 2 "${short[@]}"
row lf-dann-e30 --method dann --epochs 30 --seeds 0 1 2 "${short[@]}"
row lf-dann-im-e10 --method dann-im --epochs 10 --seeds 0 1 "${short[@]}"
row lf-dann-im-e30 --method dann-im --epochs 30 --seeds 0 1 "${short[@]}"
row lf-dann-e100 --method dann --epochs 100 --seeds 0 1 "${short[@]}"
row lf-dann-im-e100 --method dann-im --epochs 100 --seeds 0 "${short[@]}"
row lf-vada-e10 --method vada --epochs 10 --seeds 0 "${short[@]}"
row lf-dirt-t-e10 --method dirt-t --init "$RUNS/lf-dann-e30/seed{seed}" --epochs 10 --seeds 0 1 "${short[@]}"
row lf-dirt-t-e30 --method dirt-t --init "$RUNS/lf-dann-e30/seed{seed}" --epochs 30 --seeds 0 1 2 "${short[@]}"
# the runs above, then with the bundled full-size models beside them
python -m experiments.rank_scores "$RUNS"/lf-*/seed* "${OVERRIDES[@]}"
python -m experiments.rank_scores "$RUNS"/lf-*/seed* mnist-mnist_m-source-only mnist-mnist_m-dann mnist-mnist_m-dirt-t \
  "${OVERRIDES[@]}"
