#!/usr/bin/env bash
# Two builds of srgpt timed in one window. The machine's speed drifts (2-3x between days on a
# shared machine), so a figure is only compared with one taken beside it: this builds REV_A
# and REV_B (any git revision; WORKTREE for the uncommitted working tree), each in its own
# target folder under target/bench-ab/ (reused when present), then runs `srgpt bench train`
# with the given arguments for each, interleaved round by round (A B, then B A, ...), and
# prints per mode the median step time of each build, the ratio B/A of the medians and the
# spread of the per-round ratios; then the fastest round of each and their ratio. On a shared
# machine the noise only ever adds time and can flip between two speeds from one round to the
# next, so when the per-round ratios spread widely, the ratio of the fastest rounds is the
# steadier figure.
#
#   scripts/bench-ab.sh REV_A REV_B [--rounds N] [bench train args...]
#   scripts/bench-ab.sh 2112022 HEAD --rounds 5 --preset tiny --precision fp32,bf16-sr --steps 10
#
# Each build keeps its own tuning cache (SRGPT_CACHE_DIR), so each is timed with the kernel
# choices it makes itself. Run it on any change to a kernel, the model or the step loop.
set -euo pipefail

usage="usage: scripts/bench-ab.sh REV_A REV_B [--rounds N] [bench train args...]"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
rev_a=$1 rev_b=$2
shift 2
rounds=5
if [ "${1:-}" = "--rounds" ]; then
  [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds takes a whole number from 1 up" >&2; exit 2; }
  rounds=$2
  shift 2
fi
bench_args=("$@")

root=$(git rev-parse --show-toplevel)
work="$root/target/bench-ab"
mkdir -p "$work"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"

# builds a revision in its own folder and prints the path of its binary
build() {
  local rev=$1 name src
  if [ "$rev" = WORKTREE ]; then
    name=worktree
    src="$work/$name/src"
    rm -rf "$src"
    mkdir -p "$src"
    # the working tree as it is, tracked and untracked files alike (ignored ones left out)
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$src"
  else
    name=$(git -C "$root" rev-parse --short=12 "$rev^{commit}") || { echo "no revision $rev" >&2; exit 2; }
    src="$work/$name/src"
    if [ ! -d "$src" ]; then
      mkdir -p "$src"
      git -C "$root" archive "$name" | tar -xf - -C "$src"
    fi
  fi
  echo "building $rev ($name) in $work/$name" >&2
  # no dashboard where the revision has the feature: the bench needs none of it
  local features=()
  grep -q '^ui = ' "$src/Cargo.toml" && features=(--no-default-features)
  (cd "$src" && CARGO_TARGET_DIR="$work/$name/target" cargo build --release --locked --bin srgpt "${features[@]}" >&2)
  mkdir -p "$work/$name/cache"
  echo "$work/$name"
}

dir_a=$(build "$rev_a")
dir_b=$(build "$rev_b")
[ "$dir_a" != "$dir_b" ] || echo "note: $rev_a and $rev_b are the same commit" >&2

results="$work/results-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
run() {
  local dir=$1 label=$2 round=$3
  echo "round $round: $label" >&2
  SRGPT_CACHE_DIR="$dir/cache" "$dir/target/release/srgpt" bench train "${bench_args[@]}" \
    --json "$results/$label-$round.json" >"$results/$label-$round.txt" 2>&1 ||
    { echo "srgpt bench train failed for $label (round $round):" >&2; cat "$results/$label-$round.txt" >&2; exit 1; }
}
for round in $(seq 1 "$rounds"); do
  # alternate which build goes first, so a drift within a round favours neither
  if [ $((round % 2)) = 1 ]; then
    run "$dir_a" A "$round"
    run "$dir_b" B "$round"
  else
    run "$dir_b" B "$round"
    run "$dir_a" A "$round"
  fi
done

python3 - "$results" "$rounds" "$rev_a" "$rev_b" <<'EOF'
import json, statistics, sys
results, rounds, rev_a, rev_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def steps(label):
    by_mode = {}
    for r in range(1, rounds + 1):
        doc = json.load(open(f"{results}/{label}-{r}.json"))
        for run in doc["runs"]:
            by_mode.setdefault(run["precision"], []).append(run["step_ms"])
    return by_mode
a, b = steps("A"), steps("B")
print(f"A = {rev_a}, B = {rev_b}: step ms over {rounds} interleaved rounds; ratios are B/A")
print(f"{'mode':<22} {'A median':>9} {'B median':>9} {'B/A':>7}  {'per-round B/A':<13}  {'A fastest':>9} {'B fastest':>9} {'B/A':>7}")
for mode in a:
    if mode not in b:
        print(f"{mode:<22} {statistics.median(a[mode]):>9.1f} {'-':>9}  (not measured by B)")
        continue
    ma, mb = statistics.median(a[mode]), statistics.median(b[mode])
    fa, fb = min(a[mode]), min(b[mode])
    per_round = [y / x for x, y in zip(a[mode], b[mode])]
    spread = f"{min(per_round):.3f}..{max(per_round):.3f}"
    print(f"{mode:<22} {ma:>9.1f} {mb:>9.1f} {mb / ma:>7.3f}  {spread:<13}  {fa:>9.1f} {fb:>9.1f} {fb / fa:>7.3f}")
print(f"(every round's output: {results})")
EOF
