# Sourced by every script in experiments/. Each script is one table of RESULTS.md: it trains the
# table's rows on MNIST -> MNIST-M, one `main.py --seeds` call a row, each printing the mean +- std
# of its seeds' final models. Arguments given to a script are appended to every main.py call, so
# they override its settings: `experiments/dann_dirt_t.sh --limit 300 --epochs 1` is a smoke run.
# Rows go to $RUNS/<row> (default runs/experiments/<row>); a row that already finished there is
# not trained again, so the scripts share rows (the DANN row that DIRT-T refines, for example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-runs/experiments}
OVERRIDES=("$@")

# row NAME FLAGS...: train one row in $RUNS/NAME, or print its summary if it finished already
row() {
  local name=$1 out=$RUNS/$1
  shift
  if [ -f "$out/summary.json" ]; then
    echo "$name (done already): $(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["line"])' "$out/summary.json")"
    return
  fi
  echo "== $name"
  python main.py --source mnist --target mnist_m --eval-every 10 "$@" --out "$out" "${OVERRIDES[@]}"
}
