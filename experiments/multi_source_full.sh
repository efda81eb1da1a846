#!/usr/bin/env bash
# The default bundled model's recipe at full size (RESULTS.md, 'Several sources'): self-ensembling from
# MNIST and synth together (every training picture: 60,000 and 100,000) to MNIST-M (59,001), 100 epochs,
# the final model. SEEDS narrows it (default "0 1 2"). About 75 min a seed on an idle 2-core CPU with
# OMP_NUM_THREADS=2, about 2 h with one thread.
source "$(dirname "$0")/lib.sh"
read -r -a seeds <<< "${SEEDS:-0 1 2}"
row multi-source-self-ensemble --source mnist+synth --method self-ensemble --seeds "${seeds[@]}"
