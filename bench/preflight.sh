#!/usr/bin/env bash
# Benchmark of `ipcert preflight` wall time (issue #3): a full run with
# every internet endpoint unreachable (black-holed loopback ports: the
# slowest kind, every source waits for its timeout) must take at most 5 s,
# and with loopback fakes answering at most 1 s. Prints the median of N
# runs (default 7) of each. Nothing leaves loopback: UPnP multicast is off,
# NAT-PMP and the metadata service point at loopback, the self-fetch uses a
# high port.
#
#   bash bench/preflight.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-7}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/ipcert" .
go build -o "$tmp/fake" ./bench/preflightfake

start_fake() { # mode -> prints the flags
  "$tmp/fake" -mode "$1" >"$tmp/$1.flags" &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$tmp/$1.flags" ] && break; sleep 0.1; done
  cat "$tmp/$1.flags"
}

median_ms() { # mode flags... -> median wall time in ms of n runs
  local mode=$1; shift
  local times=()
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    "$tmp/ipcert" preflight "$@" --no-upnp --self-fetch-port 18080 --json >"$tmp/out.json" 2>/dev/null || true
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v mode="$mode" '{a[NR]=$1} END {printf "%-11s median %d ms  (runs: ", mode, a[int((NR+1)/2)]; for (i=1;i<=NR;i++) printf "%d%s", a[i], (i<NR?" ":""); print ")"}'
}

read -r -a unreachable <<<"$(start_fake blackhole)"
read -r -a answering <<<"$(start_fake answer)"
median_ms unreachable "${unreachable[@]}"
median_ms answering "${answering[@]}"
