#!/usr/bin/env bash
# Several labelled sources (RESULTS.md, 'Several sources'): MNIST and synth together -> MNIST-M on the
# short schedule (the first 7,000 training pictures of each domain, 100 epochs), self-ensembling and
# source-only, one choose.py sweep, to hold beside carry_over.sh's single-source rows of the same target
# (synth -> MNIST-M, MNIST -> MNIST-M). SEEDS, CANDIDATES and JOBS narrow it as there. About 15 min a
# self-ensemble run and 5 a source-only run on a 2-core CPU, one thread each, two side by side.
source "$(dirname "$0")/lib.sh"
read -r -a seeds <<< "${SEEDS:-0 1 2}"
read -r -a candidates <<< "${CANDIDATES:-self-ensemble source-only}"
python choose.py --source mnist+synth --target mnist_m --limit 7000 --eval-every 10 "${PLACEMENT[@]}" \
  --seeds "${seeds[@]}" --candidates "${candidates[@]}" --out "$RUNS/choose-mnist+synth-mnist_m-7000" "${OVERRIDES[@]}"
python -m experiments.carry_over_table "$RUNS"/choose-*-7000
