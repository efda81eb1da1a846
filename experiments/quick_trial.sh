#!/usr/bin/env bash
# The quick trial that chose the initialisation: source-only on 3,000 images for 3 epochs, six
# seeds, judged on MNIST (source) test accuracy (RESULTS.md, 'Initialisation'). 20 s a seed.
source "$(dirname "$0")/lib.sh"
row quick-trial --method source-only --limit 3000 --epochs 3 --seeds 0 1 2 3 4 5
