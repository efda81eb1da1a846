#!/usr/bin/env bash
# Self-ensembling as a refinement of the bundled DANN-then-DIRT-T model (full size, MNIST -> MNIST-M, seed 0),
# for as many epochs as DIRT-T's own refinement phase (50). About 1 h on a 2-core CPU, one thread.
source "$(dirname "$0")/lib.sh"
row self-ensemble-from-dirt-t --method self-ensemble --init mnist-mnist_m-dirt-t --epochs 50 --seeds 0
