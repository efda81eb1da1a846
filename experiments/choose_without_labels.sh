#!/usr/bin/env bash
# How well choose.py's rule picks a method without target labels (RESULTS.md, 'Choosing without
# labels'): sweeps of four candidates (source-only, dann, dann-im, dirt-t) on the labelled tasks
# between MNIST and MNIST-M (the first 7,000 training images of each domain, 100 epochs; seeds 0, 1,
# 2 on MNIST -> MNIST-M, seed 0 back), then, with the synth sweeps of synth_tasks.sh where they exist, the target accuracy
# of the model the rule chose against the most accurate candidate and the fixed recipes. About
# 45 min for MNIST -> MNIST-M and 15 min for MNIST-M -> MNIST on a 2-core CPU.
source "$(dirname "$0")/lib.sh"
read -r -a candidates <<< "${CANDIDATES:-source-only dann dann-im dirt-t}"  # CANDIDATES narrows the sweeps
sweep=(--limit 7000 --eval-every 10 --candidates "${candidates[@]}")
python choose.py --source mnist --target mnist_m "${sweep[@]}" --seeds 0 1 2 --out "$RUNS/choose-mnist-mnist_m-7000" "${OVERRIDES[@]}"
python choose.py --source mnist_m --target mnist "${sweep[@]}" --seeds 0 --out "$RUNS/choose-mnist_m-mnist-7000" "${OVERRIDES[@]}"
python -m experiments.choice_report "$RUNS"/choose-*-7000
