#!/usr/bin/env bash
# The paper's three columns on MNIST -> MNIST-M, full size, 100 epochs, seeds 0 1 2 (README's
# results table; RESULTS.md, 'The paper's table'). About 6 h on a 2-core CPU, 3 min on a GPU.
source "$(dirname "$0")/lib.sh"
row source-only --method source-only --seeds 0 1 2
row dann --method dann --seeds 0 1 2
row target-only --method target-only --seeds 0 1 2
