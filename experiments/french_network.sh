#!/usr/bin/env bash
# Self-ensembling with its paper's own digit network (French et al.'s mnist-bn-32-64-256: batch norm
# after each of three convolutions, dropout 0.5 on the flattened features; `--arch mnist-bn`), each
# domain's batch normalised by its own statistics and the mean teacher reading in training mode, as
# their code trains. The short schedule (--limit 7000, 100 epochs), the five built-in tasks, seeds 0-2,
# about 15 min a run at one thread (RESULTS.md, 'Self-ensembling with its paper's network').
source "$(dirname "$0")/lib.sh"
bn=(--method self-ensemble --arch mnist-bn --limit 7000 --seeds 0 1 2 "${PLACEMENT[@]}")
row short-bn-self-ensemble "${bn[@]}"
row short-bn-synth-self-ensemble "${bn[@]}" --source synth
row short-bn-mnist_m-mnist-self-ensemble "${bn[@]}" --source mnist_m --target mnist
row short-bn-synth-mnist-self-ensemble "${bn[@]}" --source synth --target mnist
row short-bn-mnist-synth-self-ensemble "${bn[@]}" --target synth
