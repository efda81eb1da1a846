# Sourced by every script in experiments/. Each script is one table of RESULTS.md: it trains the
# table's rows on MNIST -> MNIST-M, one `main.py --seeds` call a row, each printing the mean +- std
# of its seeds' final models. Arguments given to a script are appended to every main.py and choose.py
# call, so they override its settings: `experiments/dann_dirt_t.sh --limit 300 --epochs 1` is a smoke
# run.
# Rows go to $RUNS/<row> (default runs/experiments/<row>); a row that already finished there is
# not trained again, so the scripts share rows (the DANN row that DIRT-T refines, for example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-runs/experiments}
OVERRIDES=("$@")

# Where a sweep's runs train: $JOBS side by side here (default 2), or, when the arguments name a
# --cluster (README 'On several machines'), on that cluster, a row's seeds too.
PLACEMENT=(--jobs "${JOBS:-2}")
for arg in "${OVERRIDES[@]}"; do
  case $arg in --cluster|--cluster=*) PLACEMENT=() ;; esac
done

# TRAIN_ROWS=N (what the tests set): only a script's first N rows train; each later row's main.py
# arguments go to $ROWS_FILE, one row a line, shell-quoted, for the test to parse without training
TRAINED=0

# row NAME FLAGS...: train one row in $RUNS/NAME, or print its summary if it finished already
row() {
  local name=$1 out=$RUNS/$1
  shift
  local args=(--source mnist --target mnist_m --eval-every 10 "$@" --out "$out" "${OVERRIDES[@]}")
  if [ -f "$out/summary.json" ]; then
    echo "$name (done already): $(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["line"])' "$out/summary.json")"
    return
  fi
  if [ -n "${TRAIN_ROWS:-}" ] && [ "$TRAINED" -ge "$TRAIN_ROWS" ]; then
    printf '%q ' "${args[@]}" >> "$ROWS_FILE" && echo >> "$ROWS_FILE"
    echo "$name: not trained (TRAIN_ROWS=$TRAIN_ROWS), its arguments written to $ROWS_FILE"
    return
  fi
  TRAINED=$((TRAINED + 1))
  echo "== $name"
  python main.py "${args[@]}"
}
