#!/usr/bin/env bash
# How well choose.py's rule picks a method without target labels (RESULTS.md, 'Choosing without
# labels'): a sweep of the four default candidates, seeds 0, 1, 2, on each labelled task that runs on
# a 2-core CPU in about half an hour (the first 7,000 training images of each domain, 100 epochs),
# then the target accuracy of the model the rule chose against the most accurate candidate and the
# fixed recipes, for each seed's own sweep and for all three seeds together.
source "$(dirname "$0")/lib.sh"
sweep=(--limit 7000 --eval-every 10 --seeds 0 1 2)
python choose.py --source mnist --target mnist_m "${sweep[@]}" --out "$RUNS/choose-mnist-mnist_m-7000" "${OVERRIDES[@]}"
python choose.py --source mnist_m --target mnist "${sweep[@]}" --out "$RUNS/choose-mnist_m-mnist-7000" "${OVERRIDES[@]}"
python experiments/choice_report.py "$RUNS"/choose-*-7000
