#!/usr/bin/env bash
# Whether instance normalisation of the input helps the method that carries over (RESULTS.md,
# 'Carry-over'): self-ensemble with every picture's pixels scaled to [-1, 1] (--input-norm scale)
# instead of standardized per picture, on the short schedule, seed 0, on MNIST -> MNIST-M (where it
# is weakest) and synth -> MNIST; the standardized runs are carry_over.sh's. About 13 min a row on a
# 2-core CPU, one thread.
source "$(dirname "$0")/lib.sh"
short=(--method self-ensemble --input-norm scale --limit 7000 --seeds 0)
row input-scale-mnist-mnist_m --source mnist --target mnist_m "${short[@]}"
row input-scale-synth-mnist --source synth --target mnist "${short[@]}"
