#!/usr/bin/env bash
# Scale benchmark (issue #18): `ipcert renew` and `ipcert status` on a host
# with thousands of IP certificates.
#   1. BENCH_NODUE=10000 certificates, nothing due: `renew --quiet` (median
#      wall time and peak RSS over BENCH_RUNS runs) and `status --json`
#      (median, after one run that writes the status index; that first
#      run is shown on its own).
#   2. BENCH_STORE=5000 certificates of which BENCH_DUE=100 are due, for
#      127.1.0.x, renewed in one `renew` run from a Pebble on loopback
#      (--parallel BENCH_PARALLEL=4): wall time and how many were renewed.
# Targets: (1) renew <= 30 ms and <= 25 MB, status --json <= 150 ms;
# (2) all due ones renewed in the one run.
#
#   BENCH_CACHE=DIR      where the generated stores are kept between runs
#                        (default /var/cache/ipcert-bench; generating 10,000
#                        certificates takes minutes: every file is fsynced)
#   BENCH_TOOLS_DIR=DIR  reuse the pebble (and lego) build there
#   BENCH_IPCERT=PATH    measure this ipcert binary instead of building one
# Only loopback is used; the stores' other addresses (198.18.0.0/15,
# 203.0.113.0/24) are never contacted.
set -euo pipefail

LEGO_VERSION=v4.35.2
PEBBLE_VERSION=v2.10.3
RUNS=${BENCH_RUNS:-15}
NODUE=${BENCH_NODUE:-10000}
STORE=${BENCH_STORE:-5000}
DUE=${BENCH_DUE:-100}
PARALLEL=${BENCH_PARALLEL:-4}
CACHE=${BENCH_CACHE:-/var/cache/ipcert-bench}

die() { echo "bench/scale.sh: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/lib.sh"
bench_begin ipcert-bench-scale

if [ -n "${BENCH_IPCERT:-}" ]; then
	cp "$BENCH_IPCERT" "$work/ipcert" || die "BENCH_IPCERT=$BENCH_IPCERT: cannot copy"
else
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/ipcert" .) || die "building ipcert failed"
fi
(cd "$repo" && go build -o "$work/renewfixture" ./bench/renewfixture) || die "building bench/renewfixture failed"
mkdir -p "$CACHE"

# fixture N: a cached store of N certificates, none due for 70 hours (made
# with a fixed clock offset is not possible: they are made now, valid 160 h
# from an hour ago, so a cached one is remade once older than a day).
fixture() {
	local n=$1 dir=$CACHE/store-$1
	if [ -f "$dir/.complete" ] && [ -z "$(find "$dir/.complete" -mmin +1440)" ]; then
		echo "$dir"
		return
	fi
	rm -rf "$dir"
	echo "generating $n certificates in $dir (minutes)" >&2
	"$work/renewfixture" -state "$dir" -n "$n" >&2 || die "renewfixture failed"
	touch "$dir/.complete"
	echo "$dir"
}

median() { sort -n | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f", u / 1000}'; }

# --- 1. nothing due ----------------------------------------------------------
state=$(fixture "$NODUE")
"$work/ipcert" renew --state-dir "$state" --quiet >/dev/null || die "renew failed on the $NODUE-certificate store"
: >"$work/renew.txt"
: >"$work/status.txt"
for ((i = 1; i <= RUNS; i++)); do
	s=${EPOCHREALTIME/./}
	"$work/ipcert" renew --state-dir "$state" --quiet >/dev/null || die "renew failed"
	e=${EPOCHREALTIME/./}
	/usr/bin/time -f %M -o "$work/rss" "$work/ipcert" renew --state-dir "$state" --quiet >/dev/null
	echo "$((e - s)) $(cat "$work/rss")" >>"$work/renew.txt"
done
# The first status after the certificates changed reads them all and
# writes the status index (deploy/status_index.go); timed on its own.
rm -f "$state/status-index"
s=${EPOCHREALTIME/./}
"$work/ipcert" status --json --state-dir "$state" --unit-dir "$work" --cron-dir "$work" >/dev/null || true
e=${EPOCHREALTIME/./}
cold_us=$((e - s))
for ((i = 1; i <= (RUNS + 1) / 2; i++)); do
	s=${EPOCHREALTIME/./}
	"$work/ipcert" status --json --state-dir "$state" --unit-dir "$work" --cron-dir "$work" >"$work/status.json" || true
	e=${EPOCHREALTIME/./}
	/usr/bin/time -f %M -o "$work/rss" "$work/ipcert" status --json --state-dir "$state" --unit-dir "$work" --cron-dir "$work" >/dev/null || true
	echo "$((e - s)) $(cat "$work/rss")" >>"$work/status.txt"
done
n=$(grep -c '"name"' "$work/status.json") || true
[ "$n" = "$NODUE" ] || die "status --json listed $n certificates, not $NODUE"
r_us=$(cut -d' ' -f1 "$work/renew.txt" | median)
r_kb=$(cut -d' ' -f2 "$work/renew.txt" | median)
s_us=$(cut -d' ' -f1 "$work/status.txt" | median)
s_kb=$(cut -d' ' -f2 "$work/status.txt" | median)
last_kb=$(($(stat -c %s "$state/renew-last.json") / 1024))
echo
echo "== $NODUE certificates, nothing due ($RUNS runs; load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
echo "renew:         median $(ms "$r_us") ms, $r_kb KB (targets <= 30 ms, <= 25600 KB): $( ((r_us <= 30000 && r_kb <= 25600)) && echo PASS || echo FAIL)"
echo "status --json: median $(ms "$s_us") ms, $s_kb KB (target <= 150 ms): $( ((s_us <= 150000)) && echo PASS || echo FAIL)"
echo "status --json, first run without a status index (reads every certificate): $(ms "$cold_us") ms"
echo "renew-last.json: $last_kb KB"

# --- 2. 100 due among 5,000 ----------------------------------------------------
bench_tools
bench_start_pebble
base=$(fixture $((STORE - DUE)))
due=$work/due-store
cp -a "$base" "$due"
"$work/renewfixture" -state "$due" -n "$DUE" -due "$DUE" -ca "$dir_url" -ca-root "$minica" -http-port "$http_port" >&2 || die "renewfixture -due failed"
s=${EPOCHREALTIME/./}
rc=0
/usr/bin/time -f %M -o "$work/rss" "$work/ipcert" renew --state-dir "$due" --parallel "$PARALLEL" >"$work/due.out" 2>"$work/due.err" || rc=$?
e=${EPOCHREALTIME/./}
renewed=$(grep -c ': renewed, version 2' "$work/due.out") || true
echo
echo "== $STORE certificates, $DUE due, renewed from Pebble on loopback with --parallel $PARALLEL"
echo "one renew run: $(ms $((e - s))) ms, $(cat "$work/rss") KB, exit $rc, renewed $renewed of $DUE: $( ((rc == 10 && renewed == DUE)) && echo PASS || echo FAIL)"
((rc == 10)) || tail -20 "$work/due.err" >&2
exit 0
