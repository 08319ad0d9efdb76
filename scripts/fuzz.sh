#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) and runs them on their corpora.
#   fuzz.sh TARGET [seconds]   one target (default 60 s), e.g.: scripts/fuzz.sh request_head 1800
#   fuzz.sh all [seconds]      every target in turn (scripts/test.sh runs this for 20 s each)
# Targets: those tests/fuzz/targets.cmake lists (tests/fuzz/*.cpp).
# Seeds live in tests/fuzz/corpus/TARGET; what a run finds goes to build/fuzz/corpus/TARGET,
# crashes to build/fuzz/artifacts/ (a non-zero exit names the file to reproduce with).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a targets <<< "$(sed -n 's/^set(FUZZ_TARGETS \(.*\))$/\1/p' tests/fuzz/targets.cmake)"
what="${1:-}"
seconds="${2:-60}"
if [ "$what" = all ]; then
  run=("${targets[@]}")
elif [[ " ${targets[*]} " == *" $what "* ]]; then
  run=("$what")
else
  echo "usage: $0 {all|$(IFS="|"; echo "${targets[*]}")} [seconds]" >&2; exit 2
fi

scripts/install-deps.sh fuzz
cmake -S . -B build/fuzz -G Ninja -DCACHALOT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$(nproc)"

mkdir -p build/fuzz/artifacts
for t in "${run[@]}"; do
  mkdir -p "build/fuzz/corpus/$t"
  log="build/fuzz/$t.log"
  echo "fuzz: $t for ${seconds}s" >&2
  if ! "build/fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
         "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED (input saved in build/fuzz/artifacts/, log in $log)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | tr '\n' ' ' >&2; echo >&2
done
