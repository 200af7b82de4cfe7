#!/usr/bin/env bash
# The wizard's benchmark (issue #4): time from process start to the first
# frame of `ipcert demo` on a terminal (budget: 150 ms), and the cost of
# one Update plus View at 120x40 (budget: well under a millisecond).
# Figures and method: bench/wizard.md. Loopback only; no root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${BENCH_RUNS:-21}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/ipcert" .
echo "== first frame"
go run ./bench/wizardbench -bin "$tmp/ipcert" -runs "$runs"
echo "== Update+View at 120x40"
go test ./wizard -run '^$' -bench UpdateView -benchmem -count "${BENCH_COUNT:-3}"
