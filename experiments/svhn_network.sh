#!/usr/bin/env bash
# The paper's larger `svhn` network on MNIST -> MNIST-M in bfloat16, made for a GPU (about 10x the
# `mnist` network's step on a CPU): DANN, its trained-on-target bound, DIRT-T after DANN
# (RESULTS.md, 'The svhn network').
source "$(dirname "$0")/lib.sh"
svhn=(--arch svhn --bf16)
row svhn-dann --method dann --seeds 0 1 2 "${svhn[@]}"
row svhn-target-only --method target-only --epochs 50 --seeds 0 "${svhn[@]}"
row svhn-dirt-t --method dirt-t --init "$RUNS/svhn-dann/seed{seed}" --epochs 50 --seeds 0 1 2 "${svhn[@]}"
