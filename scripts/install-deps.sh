#!/usr/bin/env bash
# Installs the Debian packages Cachalot needs. Idempotent: installs only what is missing.
# Used by the README commands, .ci/run and the Dockerfile, so every machine gets the same set.
#   install-deps.sh build     compilers and -dev libraries
#   install-deps.sh fuzz      clang and libFuzzer for the fuzz targets (scripts/fuzz.sh)
#   install-deps.sh test      build + fuzz + what the test suite starts (redis-server, curl)
#   install-deps.sh bench     test + the peers and load generator of the benchmarks
#   install-deps.sh runtime   shared libraries the cachalot binary links against
set -euo pipefail

runtime=(libyaml-cpp0.7 libhiredis0.14 libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 libssl3 libtcmalloc-minimal4
         ca-certificates)
build=(build-essential cmake ninja-build ccache pkg-config
       libboost1.81-dev libhiredis-dev libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev catch2
       libxxhash-dev libssl-dev libtcmalloc-minimal4)
fuzz=(clang-14 libclang-rt-14-dev libfuzzer-14-dev libboost1.81-dev libyaml-cpp-dev cmake ninja-build)
test=(redis-server redis-tools curl openssl prometheus docker-compose)  # redis-tools: redis-cli makes the test clusters; openssl: the TLS tests make certificates; prometheus: promtool, the real-Prometheus test; docker-compose: validates deploy/compose
bench=(wrk nginx-light varnish python3 valgrind)  # python3: loadtest/purge.sh; valgrind: loadtest/instructions.sh

case "${1:-build}" in
  runtime) want=("${runtime[@]}") ;;
  build)   want=("${build[@]}") ;;
  fuzz)    want=("${fuzz[@]}") ;;
  test)    want=("${build[@]}" "${fuzz[@]}" "${test[@]}") ;;
  bench)   want=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 [runtime|build|fuzz|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
