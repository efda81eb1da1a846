#!/usr/bin/env bash
# The label-free estimates and choose.py's rule (RESULTS.md, 'Estimating target accuracy'): sweeps on
# targets whose class mix is not the source's (--target-imbalance 10: class c keeps 10^(-c/9) of its
# training and test pictures, class 0 all, class 9 a tenth), MNIST -> MNIST-M and synth -> MNIST, with
# the candidates of carry_over.sh; then every sweep under $RUNS rescored and reported, carry_over.sh's
# included (run it first), with a rule fixed on the two MNIST -> MNIST-M sweeps only. SEEDS, CANDIDATES
# and JOBS narrow it as in carry_over.sh.
source "$(dirname "$0")/lib.sh"
read -r -a seeds <<< "${SEEDS:-0 1 2}"
read -r -a candidates <<< "${CANDIDATES:-adamatch self-ensemble source-only dann dann-im dirt-t vada}"
sweep=(--limit 7000 --target-imbalance 10 --eval-every 10 "${PLACEMENT[@]}" --seeds "${seeds[@]}"
       --candidates "${candidates[@]}")
python choose.py --source mnist --target mnist_m "${sweep[@]}" --out "$RUNS/choose-mnist-mnist_m-7000-skew10" \
  "${OVERRIDES[@]}"
python choose.py --source synth --target mnist "${sweep[@]}" --out "$RUNS/choose-synth-mnist-7000-skew10" \
  "${OVERRIDES[@]}"
python -m experiments.choice_report "$RUNS"/choose-*-7000* \
  --fit "$RUNS"/choose-mnist-mnist_m-7000 "$RUNS"/choose-mnist-mnist_m-7000-skew10
