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
# each picture standardised over all its channels together (French et al.'s code), MNIST -> MNIST-M:
# what --input-norm joint does alone, without their network (RESULTS.md, 'Self-ensembling with its paper's network')
row input-joint-mnist-mnist_m --source mnist --target mnist_m --method self-ensemble --input-norm joint --limit 7000 --seeds 0
