#!/usr/bin/env bash
# Quick start: builds Cachalot, starts the demo origin on 127.0.0.1:8081 and Cachalot on :8080
# with config/cachalot.yaml (admin on 127.0.0.1:9090). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release

build/release/cachalot-demo-origin 8081 &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
echo "try: curl -i http://localhost:8080/   (metrics: curl http://127.0.0.1:9090/metrics)"
build/release/cachalot --config config/cachalot.yaml
