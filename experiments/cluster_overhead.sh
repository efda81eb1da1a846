#!/usr/bin/env bash
# On several machines (RESULTS.md, 'Speed'): the same small grid (two candidates x two seeds, the first
# 1,000 training pictures, 5 epochs) trained by choose.py on this machine with --jobs 2, then as Ray
# tasks with --cluster auto, one CPU and one thread a run; prints each wall time and both sweeps'
# accuracies, which must be equal. CANDIDATES and SEEDS narrow it. Needs Ray: pip install -r requirements-cluster.txt
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1
grid=(--source mnist --target mnist_m --limit 1000 --epochs 5 --candidates ${CANDIDATES:-source-only dann} --seeds ${SEEDS:-0 1}
      "${OVERRIDES[@]}")
start=$(date +%s.%N)
python choose.py "${grid[@]}" --jobs 2 --out "$RUNS/cluster-overhead/jobs2"
middle=$(date +%s.%N)
python choose.py "${grid[@]}" --cluster auto --cpus-per-run 1 --out "$RUNS/cluster-overhead/ray"
end=$(date +%s.%N)
python - "$RUNS/cluster-overhead" "$start" "$middle" "$end" <<'PY'
import json, sys
from pathlib import Path
out, start, middle, end = Path(sys.argv[1]), *map(float, sys.argv[2:])
accuracies = {}
for name, seconds in (("jobs2", middle - start), ("ray", end - middle)):
    runs = json.loads((out / name / "choice.json").read_text())["runs"]
    accuracies[name] = [r["target_test_acc"] for r in runs]
    times = ", ".join(f"{r['wall_time_s']:.1f}" for r in runs)
    print(f"{name}: {seconds:.1f} s; each run {times} s")
print("same accuracies:", accuracies["jobs2"] == accuracies["ray"])
PY
