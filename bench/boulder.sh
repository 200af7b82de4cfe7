#!/usr/bin/env bash
# ipcert against Boulder, Let's Encrypt's own CA software (issue #25), side
# by side with the lego CLI v4.35.2: each gets a shortlived certificate for
# one address over http-01 from ONE Boulder stack (internal/boulder: the
# primary VA and three remote perspectives, CT logs, rate limits) running
# in a network namespace of its own, a fresh account and a fresh address
# every run (Boulder's rate limits count per address set).
#
# Reported per client (medians): wall time, Boulder's own time (the WFE's
# latency of every request the run made, from its log, plus the VA's
# validation latency from its audit log), and the overshoot: wall time
# minus Boulder's own time, which is what the client adds (process start,
# key generation, waiting between polls).
#
# Usage: sudo bench/boulder.sh        (root: the namespace)
#   BENCH_RUNS=9        timed runs per client (at least 5)
#   BENCH_TOOLS_DIR=DIR reuse lego/pebble binaries built there
#   BENCH_IPCERT=PATH   measure this ipcert binary instead of the checkout's
# Exits 0 whatever the figures; 1 when a run or the setup fails. Nothing
# leaves the namespace: the addresses live on its loopback.
set -euo pipefail

LEGO_VERSION=v4.35.2
PEBBLE_VERSION=v2.10.3
RUNS=${BENCH_RUNS:-9}
die() { echo "bench/boulder.sh: $*" >&2; exit 1; }
[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS >= 5)) || die "BENCH_RUNS must be a number >= 5 (got $RUNS)"
[ "$(id -u)" = 0 ] || die "run it as root: Boulder runs in a network namespace"
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/lib.sh"
bench_begin ipcert-boulder-bench

if [ -n "${BENCH_IPCERT:-}" ]; then
	cp "$BENCH_IPCERT" "$work/ipcert" || die "BENCH_IPCERT=$BENCH_IPCERT: cannot copy"
else
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/ipcert" .) || die "building ipcert failed"
fi
(cd "$repo" && go build -o "$work/boulderstack" ./internal/boulder/boulderstack) || die "building internal/boulder/boulderstack failed"
bench_tools

# Addresses 64.112.117.100 + n, one per run and client.
addrs=()
for n in $(seq 0 $((2 * RUNS + 1))); do addrs+=("64.112.117.$((100 + n))"); done
"$work/boulderstack" up "${addrs[@]}" >"$work/stack.out" 2>"$work/stack.err" &
bench_extra_pids+=" $!"
for _ in $(seq 600); do
	grep -q '^logs ' "$work/stack.out" 2>/dev/null && break
	kill -0 "${bench_extra_pids##* }" 2>/dev/null || { cat "$work/stack.err" >&2; die "Boulder did not start"; }
	sleep 0.5
done
grep -q '^logs ' "$work/stack.out" || die "Boulder did not come up in 5 minutes"
ns=$(awk '$1 == "namespace" {print $2}' "$work/stack.out")
dir_url=$(awk '$1 == "directory" {print $2}' "$work/stack.out")
tls_root=$(sed -n 's/^directory .*(trust \(.*\))$/\1/p' "$work/stack.out")
logs=$(awk '$1 == "logs" {print $2}' "$work/stack.out")
echo "Boulder up in namespace $ns, $dir_url" >&2

# boulder_ms WFE_FROM VA_FROM: Boulder's own milliseconds for the log lines
# after those line numbers.
boulder_ms() {
	local wfe va
	wfe=$(tail -n +"$(($1 + 1))" "$logs/wfe2.log" | awk '$6 == "boulder-wfe2" && $12 ~ /^[0-9]+$/ {s += $12} END {print s + 0}')
	va=$(tail -n +"$(($2 + 1))" "$logs/va.log" | grep -o '"Latency":[0-9.]*' | awk -F: '{s += $2 * 1000} END {printf "%d\n", s}')
	echo $((wfe + va))
}

next=0
run() { # CLIENT: appends "wall_ms boulder_ms" to $work/CLIENT.txt
	local client=$1 ip=${addrs[$next]} state=$work/state-$1-$next out=$work/out-$1-$next rc=0 start end w v
	next=$((next + 1))
	mkdir -p "$state"
	case $client in
	ipcert) cmd=("$work/ipcert" issue --ip "$ip" --ca "$dir_url" --ca-root "$tls_root" --agree-tos --state-dir "$state" --quiet) ;;
	lego) cmd=(env LEGO_CA_CERTIFICATES="$tls_root" "$tools/lego" --server "$dir_url" --accept-tos
		--path "$state" --domains "$ip" --disable-cn --http --http.port "$ip:80" run --profile shortlived) ;;
	esac
	w=$(wc -l <"$logs/wfe2.log")
	v=$(wc -l <"$logs/va.log")
	start=${EPOCHREALTIME/./}
	ip netns exec "$ns" "${cmd[@]}" >"$out.stdout" 2>"$out.stderr" || rc=$?
	end=${EPOCHREALTIME/./}
	((rc == 0)) || { cat "$out.stderr" >&2; die "$client for $ip failed (exit $rc)"; }
	echo "$(((end - start) / 1000)) $(boulder_ms "$w" "$v")" >>"$work/$client.txt"
}

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
: >"$work/ipcert.txt"
: >"$work/lego.txt"
for _ in $(seq "$RUNS"); do
	run ipcert
	run lego
done
echo "== ipcert issue vs lego $LEGO_VERSION run, http-01, one address, Boulder $(sed -n 's/^const Version = "\(.*\)"/\1/p' "$repo/internal/boulder/boulder.go"), $RUNS runs each (medians, ms)"
printf '%-16s %8s %10s %10s %12s\n' client wall boulder overshoot "wall min-max"
for c in ipcert lego; do
	wall=$(cut -d' ' -f1 "$work/$c.txt" | median)
	own=$(cut -d' ' -f2 "$work/$c.txt" | median)
	over=$(awk '{print $1 - $2}' "$work/$c.txt" | median)
	printf '%-16s %8s %10s %10s %12s\n' "$c" "$wall" "$own" "$over" "$(cut -d' ' -f1 "$work/$c.txt" | sort -n | sed -n '1p;$p' | paste -sd-)"
done
