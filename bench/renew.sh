#!/usr/bin/env bash
# Renewal benchmark (issue #6): `ipcert renew` with 50 managed certificates
# and nothing due, side by side with `lego renew --dynamic --ari-disable`
# (lego CLI v4.35.2) for one certificate that is not due.
#
# Usage: bench/renew.sh            (from anywhere)
#   BENCH_RUNS=15       timed runs per client (at least 7)
#   BENCH_CERTS=50      certificates in ipcert's state
#   BENCH_TOOLS_DIR=DIR reuse lego/pebble binaries built there (built into DIR
#                       when missing); default: a temporary folder, removed
#   BENCH_CGO_ENABLED=0 how ipcert is built: 0 (default) gives the static
#                       binary a release build makes; 1 links libc
#                       dynamically, which costs about 1 ms more per start
#
# Targets: ipcert's median wall time <= 10 ms and median peak RSS <= 20 MB.
# Each timed run starts the command twice: alone, for its wall time (bash's
# EPOCHREALTIME around it), and under /usr/bin/time -v, for its peak RSS
# ("Maximum resident set size"; the wall time around that run, which
# includes time's own fork/exec, is shown as a bound). Prints medians (and
# min-max) for both clients, and PASS/FAIL.
# Exits 0 whatever the verdict; 1 when the setup or a run fails. Only
# loopback is used; ports 80/443 are never bound.
#
# ipcert's state is written by bench/renewfixture: certificates as they are
# right after a renewal whose ARI check succeeded (window around the
# midpoint, next check in 6 h), so a run has nothing to do and must not
# touch the network (checked with strace when it is installed). lego needs
# its CA to run even when nothing is due (it fetches the directory before
# deciding), so a Pebble process serves it; lego's certificate is issued by
# that Pebble first, with lego itself.
set -euo pipefail

LEGO_VERSION=v4.35.2
PEBBLE_VERSION=v2.10.3
RUNS=${BENCH_RUNS:-15}
CERTS=${BENCH_CERTS:-50}
TIME_TARGET_MS=10
RSS_TARGET_KB=20480

die() { echo "bench/renew.sh: $*" >&2; exit 1; }

[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS >= 7)) || die "BENCH_RUNS must be a number >= 7 (got $RUNS)"
[[ $CERTS =~ ^[0-9]+$ ]] && ((CERTS >= 1)) || die "BENCH_CERTS must be a number >= 1 (got $CERTS)"
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/lib.sh"
bench_begin ipcert-bench-renew

# --- build -------------------------------------------------------------------
echo "building ipcert and bench/renewfixture from $repo" >&2
cgo=${BENCH_CGO_ENABLED:-0}
(cd "$repo" && CGO_ENABLED=$cgo go build -o "$work/ipcert" . && go build -o "$work/renewfixture" ./bench/renewfixture) || die "build failed"

bench_tools

# --- ipcert's state: CERTS certificates, none due -------------------------------
state=$work/state
"$work/renewfixture" -state "$state" -n "$CERTS" || die "renewfixture failed"
n=$("$work/ipcert" renew --state-dir "$state" --json | grep -c '"outcome": "not-due"') || true
[ "$n" = "$CERTS" ] || die "expected $CERTS certificates not due, got $n"
if command -v strace >/dev/null; then
	strace -f -qq -e trace=socket,connect -o "$work/strace.txt" "$work/ipcert" renew --state-dir "$state" --quiet ||
		die "ipcert renew failed under strace"
	if grep -E 'socket\(AF_INET|connect\(' "$work/strace.txt" >/dev/null; then
		cat "$work/strace.txt" >&2
		die "ipcert renew with nothing due opened a network socket"
	fi
	echo "strace: ipcert renew with nothing due opened no network socket" >&2
fi

# --- Pebble for lego ----------------------------------------------------------
bench_start_pebble

lego=(env LEGO_CA_CERTIFICATES="$minica" "$tools/lego" --server "$dir_url" --email bench@example.org
	--accept-tos --path "$work/lego" --domains 127.0.0.1 --disable-cn --http --http.port "127.0.0.1:$http_port")
"${lego[@]}" run --profile shortlived >"$work/lego-run.log" 2>&1 || { cat "$work/lego-run.log" >&2; die "lego could not get its certificate from Pebble"; }
"${lego[@]}" renew --dynamic --ari-disable --no-random-sleep >"$work/lego-check.log" 2>&1 || { cat "$work/lego-check.log" >&2; die "lego renew failed"; }
grep -qi "no renewal" "$work/lego-check.log" || { cat "$work/lego-check.log" >&2; die "lego's certificate was due; the comparison needs one that is not"; }
echo "Pebble $PEBBLE_VERSION at $dir_url; lego holds one certificate that is not due; $RUNS runs per client" >&2

# --- runs ----------------------------------------------------------------------
run() { # CLIENT N
	local client=$1 n=$2 tf=$work/time-$1-$2 start end tstart tend rc=0 cmd
	case $client in
	ipcert) cmd=("$work/ipcert" renew --state-dir "$state" --quiet) ;;
	lego) cmd=("${lego[@]}" renew --dynamic --ari-disable --no-random-sleep) ;;
	esac
	# Wall time of the command alone (bash's EPOCHREALTIME around it) ...
	start=${EPOCHREALTIME/./}
	"${cmd[@]}" >"$work/out" 2>&1 || rc=$?
	end=${EPOCHREALTIME/./}
	# ... then the same command under /usr/bin/time -v for its peak memory
	# (and the wall time with time's own fork/exec included, as a bound).
	tstart=${EPOCHREALTIME/./}
	/usr/bin/time -v -o "$tf" "${cmd[@]}" >>"$work/out" 2>&1 || rc=$?
	tend=${EPOCHREALTIME/./}
	if ((rc != 0)); then
		echo "--- $client run $n failed (exit $rc): ${cmd[*]}" >&2
		cat "$work/out" >&2
		exit 1
	fi
	local rss
	rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf")
	[ -n "$rss" ] || die "no peak memory in /usr/bin/time output"
	echo "$((end - start)) $rss $((tend - tstart))" >>"$work/$client.txt"
	printf '  %-6s run %2d: %8.2f ms (%8.2f ms under time -v) %8d KB\n' "$client" "$n" \
		"$(awk -v u=$((end - start)) 'BEGIN {print u / 1000}')" "$(awk -v u=$((tend - tstart)) 'BEGIN {print u / 1000}')" "$rss" >&2
}

run ipcert 0
run lego 0
: >"$work/ipcert.txt"
: >"$work/lego.txt"
for ((i = 1; i <= RUNS; i++)); do
	if ((i % 2)); then
		run ipcert "$i"
		run lego "$i"
	else
		run lego "$i"
		run ipcert "$i"
	fi
done

# --- report --------------------------------------------------------------------
median() { # column FILE
	cut -d' ' -f"$1" "$2" | sort -n | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { cut -d' ' -f"$1" "$2" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
i_us=$(median 1 "$work/ipcert.txt")
l_us=$(median 1 "$work/lego.txt")
i_kb=$(median 2 "$work/ipcert.txt")
l_kb=$(median 2 "$work/lego.txt")
i_range=$(minmax 1 "$work/ipcert.txt")
l_range=$(minmax 1 "$work/lego.txt")

i_tv=$(median 3 "$work/ipcert.txt")
l_tv=$(median 3 "$work/lego.txt")

echo
echo "renew with nothing due: ipcert ($CERTS certificates, CGO_ENABLED=$cgo) vs lego $LEGO_VERSION (1 certificate), $RUNS runs each (medians)"
printf '%-34s %9s %16s %16s %13s %14s\n' client "wall ms" "(min-max ms)" "under time -v" "peak RSS KB" "(min-max)"
printf '%-34s %9s %16s %16s %13s %14s\n' "ipcert renew" "$(ms "$i_us")" "$(ms "${i_range%-*}")-$(ms "${i_range#*-}")" "$(ms "$i_tv")" "$i_kb" "$(minmax 2 "$work/ipcert.txt")"
printf '%-34s %9s %16s %16s %13s %14s\n' "lego renew --dynamic --ari-disable" "$(ms "$l_us")" "$(ms "${l_range%-*}")-$(ms "${l_range#*-}")" "$(ms "$l_tv")" "$l_kb" "$(minmax 2 "$work/lego.txt")"
t_ok=FAIL m_ok=FAIL
((i_us <= TIME_TARGET_MS * 1000)) && t_ok=PASS
((i_kb <= RSS_TARGET_KB)) && m_ok=PASS
echo "time:   ipcert median $(ms "$i_us") ms (target <= $TIME_TARGET_MS ms): $t_ok"
echo "memory: ipcert median $i_kb KB (target <= $RSS_TARGET_KB KB): $m_ok"
echo "machine load while measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
exit 0
