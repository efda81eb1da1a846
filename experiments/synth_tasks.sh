#!/usr/bin/env bash
# The synth tasks (RESULTS.md, 'Synth digits'), with nothing tuned on them: they check that the
# defaults carry over beyond MNIST -> MNIST-M. Four choose.py candidates (source-only,
# DANN, DANN with information maximisation, DANN then DIRT-T) on synth -> MNIST (seeds 0, 1, 2),
# synth -> MNIST-M and MNIST -> synth (seed 0), the first 7,000 training pictures of each domain,
# 100 epochs, the mnist network; then the trained-on-target bounds and what choose.py's rule picked.
# synth is rendered first if absent (30 s). About 2 h of CPU time in all: 1 h on 2 cores.
source "$(dirname "$0")/lib.sh"
read -r -a candidates <<< "${CANDIDATES:-source-only dann dann-im dirt-t}"  # CANDIDATES narrows the sweeps
sweep=(--limit 7000 --eval-every 10 --candidates "${candidates[@]}")
python choose.py --source synth --target mnist "${sweep[@]}" --seeds 0 1 2 --out "$RUNS/choose-synth-mnist-7000" "${OVERRIDES[@]}"
python choose.py --source synth --target mnist_m "${sweep[@]}" --seeds 0 --out "$RUNS/choose-synth-mnist_m-7000" "${OVERRIDES[@]}"
python choose.py --source mnist --target synth "${sweep[@]}" --seeds 0 --out "$RUNS/choose-mnist-synth-7000" "${OVERRIDES[@]}"
row target-only-mnist-7000 --source synth --target mnist --method target-only --limit 7000 --seeds 0
row target-only-mnist_m-7000 --source synth --target mnist_m --method target-only --limit 7000 --seeds 0
row target-only-synth-7000 --source mnist --target synth --method target-only --limit 7000 --seeds 0
python -m experiments.choice_report "$RUNS"/choose-synth-mnist-7000 "$RUNS"/choose-synth-mnist_m-7000 \
  "$RUNS"/choose-mnist-synth-7000
