#!/usr/bin/env bash
# The first-phase methods beyond the paper at full size, one seed each (RESULTS.md, 'Every method
# at full size'): DANN with information maximisation, and VADA (about 2 h on a 2-core CPU).
source "$(dirname "$0")/lib.sh"
row dann-im --method dann-im --seeds 0
row vada --method vada --seeds 0
