#!/usr/bin/env bash
# Carry-over (RESULTS.md, 'Carry-over'): every built-in task on the short schedule (the first 7,000
# training pictures of each domain, 100 epochs, the mnist network), one choose.py sweep per task with
# every method a candidate, so that the label-free scores of every run can be compared afterwards
# without training again. SEEDS and CANDIDATES narrow it (a sweep folder keeps what finished, so a
# later, wider call trains only what is missing); TASKS picks tasks and JOBS the runs side by side,
# so that two calls on different tasks can share a machine:
#   SEEDS="0" CANDIDATES="adamatch self-ensemble source-only" experiments/carry_over.sh
# Run times on a 2-core CPU, two runs side by side at one thread each: adamatch 15-20 min,
# self-ensemble 12-15 min, source-only 4-6 min, dann 5-9 min. synth is rendered first if absent (30 s).
source "$(dirname "$0")/lib.sh"
read -r -a seeds <<< "${SEEDS:-0 1 2}"
read -r -a candidates <<< "${CANDIDATES:-adamatch self-ensemble source-only dann dann-im dirt-t vada}"
read -r -a tasks <<< "${TASKS:-mnist:mnist_m mnist_m:mnist synth:mnist synth:mnist_m mnist:synth}"
sweep=(--limit 7000 --eval-every 10 "${PLACEMENT[@]}" --seeds "${seeds[@]}" --candidates "${candidates[@]}")
for task in "${tasks[@]}"; do
  IFS=: read -r source target <<< "$task"
  python choose.py --source "$source" --target "$target" "${sweep[@]}" --out "$RUNS/choose-$source-$target-7000" \
    "${OVERRIDES[@]}"
done
python -m experiments.carry_over_table "$RUNS"/choose-*-7000
python -m experiments.choice_report "$RUNS"/choose-*-7000
