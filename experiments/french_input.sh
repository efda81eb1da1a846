#!/usr/bin/env bash
# French et al.'s network (experiments/french_network.sh) fed as their code feeds it: each picture
# standardised over all its channels together (--input-norm joint), or only scaled to [-1, 1]
# (--input-norm scale); the short schedule, the two tasks into MNIST-M, seeds 0-2, about 20 min a
# run at one thread (RESULTS.md, 'Self-ensembling with its paper's network').
source "$(dirname "$0")/lib.sh"
bn=(--method self-ensemble --arch mnist-bn --limit 7000 --seeds 0 1 2 "${PLACEMENT[@]}")
row short-bn-joint-self-ensemble "${bn[@]}" --input-norm joint
row short-bn-scale-self-ensemble "${bn[@]}" --input-norm scale
# the input normalisation whose MNIST -> MNIST-M seed 0 had the lower class shift (joint: .155, scale: .303)
row short-bn-joint-synth-self-ensemble "${bn[@]}" --input-norm joint --source synth
# the other built-in tasks, whether the input costs anywhere (seed 0 first)
row short-bn-joint-mnist_m-mnist-self-ensemble "${bn[@]}" --input-norm joint --source mnist_m --target mnist
row short-bn-joint-synth-mnist-self-ensemble "${bn[@]}" --input-norm joint --source synth --target mnist
row short-bn-joint-mnist-synth-self-ensemble "${bn[@]}" --input-norm joint --target synth
# DANN first, then self-ensembling for 50 epochs from it (the refinement that lifted the `mnist` network
# from .65 to .81 on MNIST -> MNIST-M), on this network and input; seed 0 of both tasks into MNIST-M first
chain=(--arch mnist-bn --input-norm joint --limit 7000 --seeds 0 1 2 "${PLACEMENT[@]}")
row short-bn-joint-dann --method dann "${chain[@]}"
row short-bn-joint-self-ensemble-from-dann --method self-ensemble --init "$RUNS/short-bn-joint-dann/seed{seed}" \
  --epochs 50 "${chain[@]}"
row short-bn-joint-synth-dann --method dann --source synth "${chain[@]}"
row short-bn-joint-synth-self-ensemble-from-dann --method self-ensemble --source synth \
  --init "$RUNS/short-bn-joint-synth-dann/seed{seed}" --epochs 50 "${chain[@]}"
# both sources at once (their labelled pictures share one batch, and so its statistics), seeds 0-1
row short-bn-joint-two-source-self-ensemble "${bn[@]}" --input-norm joint --source mnist+synth
# full size (every training picture, 100 epochs): about 2 h 20 min a run on a 2-core CPU (two threads are no faster)
row full-bn-joint-self-ensemble --method self-ensemble --arch mnist-bn --input-norm joint --seeds 0 1 2 "${PLACEMENT[@]}"
