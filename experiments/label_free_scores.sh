#!/usr/bin/env bash
# How well each label-free score ranks finished runs by their target accuracy (RESULTS.md,
# 'Label-free scores'): short MNIST -> MNIST-M runs of several methods, seeds and lengths (the first
# 7,000 training images of each domain), then every run's scores and target test accuracy, and each
# score's rank correlation with that accuracy. About 15 min on a 2-core CPU with two runs side by side.
source "$(dirname "$0")/lib.sh"
short=(--limit 7000)
for epochs in 10 30; do
  row "lf-source-only-e$epochs" --method source-only --epochs "$epochs" --seeds 0 1 2 "${short[@]}"
  row "lf-dann-e$epochs" --method dann --epochs "$epochs" --seeds 0 1 2 "${short[@]}"
  row "lf-dann-im-e$epochs" --method dann-im --epochs "$epochs" --seeds 0 1 "${short[@]}"
done
row lf-vada-e10 --method vada --epochs 10 --seeds 0 "${short[@]}"
row lf-dirt-t-e10 --method dirt-t --init "$RUNS/lf-dann-e30/seed{seed}" --epochs 10 --seeds 0 1 "${short[@]}"
python experiments/rank_scores.py "$RUNS"/lf-*/seed* "${OVERRIDES[@]}"
