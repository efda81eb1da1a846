#!/usr/bin/env bash
# Several runs packed on one GPU (RESULTS.md, 'Speed'): the same small grid (source-only and DANN x two
# seeds, the first 7,000 training pictures, 10 epochs) trained by choose.py as Ray tasks on this machine,
# first one run on the card at a time (--gpus-per-run 1), then PACK runs sharing it (--gpus-per-run
# 1/PACK, default 4); prints each wall time, the runs an hour, and whether both gave the same accuracies
# (on a GPU cuDNN may round differently). CANDIDATES and SEEDS change the grid. Needs Ray and a CUDA GPU.
source "$(dirname "$0")/lib.sh"
pack=${PACK:-4}
grid=(--source mnist --target mnist_m --limit 7000 --epochs 10 --candidates ${CANDIDATES:-source-only dann}
      --seeds ${SEEDS:-0 1} --device cuda --cluster auto --cpus-per-run 1 "${OVERRIDES[@]}")
start=$(date +%s.%N)
python choose.py "${grid[@]}" --gpus-per-run 1 --out "$RUNS/gpu-packing/one"
middle=$(date +%s.%N)
python choose.py "${grid[@]}" --gpus-per-run "$(python -c "print(1 / $pack)")" --out "$RUNS/gpu-packing/packed"
end=$(date +%s.%N)
python - "$RUNS/gpu-packing" "$start" "$middle" "$end" "$pack" <<'PY'
import json, sys
from pathlib import Path
out, start, middle, end, pack = Path(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
accuracies = {}
for name, seconds in (("one", middle - start), (f"packed {pack}", end - middle)):
    runs = json.loads((out / name.split()[0] / "choice.json").read_text())["runs"]
    accuracies[name] = [r["target_test_acc"] for r in runs]
    print(f"{name}: {seconds:.1f} s, {3600 * len(runs) / seconds:.1f} runs an hour; each run "
          + ", ".join(f"{r['wall_time_s']:.1f}" for r in runs) + " s")
print("same accuracies:", len(set(map(tuple, accuracies.values()))) == 1)
PY
