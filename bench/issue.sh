#!/usr/bin/env bash
# Issuance benchmark (issue #2): `ipcert issue` against the lego CLI v4.35.2,
# both getting a shortlived certificate for 127.0.0.1 over http-01 from ONE
# Pebble v2.10.3 process on loopback, each with a fresh account every run.
#
# Usage: bench/issue.sh            (from anywhere; see bench/README.md)
#   BENCH_RUNS=9        timed runs per client (at least 7)
#   BENCH_TOOLS_DIR=DIR reuse lego/pebble binaries built there (built into DIR
#                       when missing); default: a temporary folder, removed
#   BENCH_DEBUG=1       also pass --debug to ipcert and keep its logs in
#                       $BENCH_KEEP (a folder that is not removed)
#   BENCH_KEEP=DIR      keep every run's output and state there
#
# Prints per-client median wall time and median peak RSS, the ratios, and
# PASS/FAIL against the targets (ipcert median <= 0.15 x lego's, ipcert RSS
# <= lego's). Exits 0 whatever the verdict; 1 when a run or the setup fails.
# Only loopback is used: Pebble listens on 127.0.0.1 and validates
# 127.0.0.1 on a free high port; ports 80/443 are never bound.
set -euo pipefail

LEGO_VERSION=v4.35.2
PEBBLE_VERSION=v2.10.3
RUNS=${BENCH_RUNS:-9}
TIME_TARGET=0.15

die() { echo "bench/issue.sh: $*" >&2; exit 1; }

[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS >= 7)) || die "BENCH_RUNS must be a number >= 7 (got $RUNS)"
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/bench/lib.sh"
bench_begin ipcert-bench

keep=${BENCH_KEEP:-}
if [ -n "${BENCH_DEBUG:-}" ] && [ -z "$keep" ]; then
	keep=$(mktemp -d "${TMPDIR:-/tmp}/ipcert-bench-keep.XXXXXX")
fi
[ -z "$keep" ] || mkdir -p "$keep"

# --- build ---------------------------------------------------------------
echo "building ipcert from $repo" >&2
(cd "$repo" && go build -o "$work/ipcert" .) || die "building ipcert failed"

bench_tools

# --- Pebble ----------------------------------------------------------------
bench_start_pebble
echo "Pebble $PEBBLE_VERSION at $dir_url, http-01 on 127.0.0.1:$http_port; $RUNS runs per client" >&2

# --- runs --------------------------------------------------------------------
# run CLIENT N: one issuance with a fresh state folder (so a fresh account);
# appends "wall_ms rss_kb" to $work/CLIENT.txt.
run() {
	local client=$1 n=$2 state=$work/state-$1-$2 out=$work/out-$1-$2
	local tf=$out.time start end rc=0
	mkdir -p "$state"
	local cmd
	case $client in
	ipcert)
		cmd=("$work/ipcert" issue --ip 127.0.0.1 --ca "$dir_url" --ca-root "$minica"
			--http-listen "127.0.0.1:$http_port" --agree-tos --state-dir "$state" --quiet)
		[ -z "${BENCH_DEBUG:-}" ] || cmd+=(--debug "$keep/ipcert-$n.debug.log")
		;;
	lego)
		# --disable-cn: Let's Encrypt refuses an IP in the CSR's Common Name
		# (FACTS.md); Pebble would not, but the request should be the one
		# that works against Let's Encrypt.
		cmd=(env LEGO_CA_CERTIFICATES="$minica" "$tools/lego" --server "$dir_url"
			--email bench@example.org --accept-tos --path "$state" --domains 127.0.0.1
			--disable-cn --http --http.port "127.0.0.1:$http_port" run --profile shortlived)
		;;
	esac
	start=${EPOCHREALTIME/./}
	/usr/bin/time -v -o "$tf" "${cmd[@]}" >"$out.stdout" 2>"$out.stderr" || rc=$?
	end=${EPOCHREALTIME/./}
	if ((rc != 0)); then
		echo "--- $client run $n failed (exit $rc): ${cmd[*]}" >&2
		cat "$out.stdout" "$out.stderr" >&2
		echo "--- Pebble log (last 30 lines)" >&2
		tail -n 30 "$work/pebble.log" >&2
		exit 1
	fi
	local rss
	rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf")
	[ -n "$rss" ] || die "no peak memory in /usr/bin/time output for $client run $n"
	echo "$(((end - start) / 1000)) $rss" >>"$work/$client.txt"
	printf '  %-6s run %2d: %6d ms %8d KB\n' "$client" "$n" $(((end - start) / 1000)) "$rss" >&2
	if [ -n "$keep" ]; then
		cp "$out.stdout" "$keep/$client-$n.stdout"
		cp "$out.stderr" "$keep/$client-$n.stderr"
		cp "$tf" "$keep/$client-$n.time"
	fi
	rm -rf "$state"
}

# One untimed run each first: loads both binaries into the page cache and
# warms Pebble, so neither client pays that alone.
run ipcert 0
run lego 0
: >"$work/ipcert.txt"
: >"$work/lego.txt"
# Alternate the clients, and who goes first in each pair, to spread drift
# (other load on the machine, Pebble's growing in-memory database).
for ((i = 1; i <= RUNS; i++)); do
	if ((i % 2)); then
		run ipcert "$i"
		run lego "$i"
	else
		run lego "$i"
		run ipcert "$i"
	fi
done

# --- report -----------------------------------------------------------------
median() { # column of FILE
	sort -n <(cut -d' ' -f"$1" "$2") | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { # column of FILE -> "min-max"
	cut -d' ' -f"$1" "$2" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'
}
i_ms=$(median 1 "$work/ipcert.txt")
l_ms=$(median 1 "$work/lego.txt")
i_kb=$(median 2 "$work/ipcert.txt")
l_kb=$(median 2 "$work/lego.txt")

verdict=$(awk -v im="$i_ms" -v lm="$l_ms" -v ik="$i_kb" -v lk="$l_kb" -v t="$TIME_TARGET" 'BEGIN {
	tr = lm > 0 ? im / lm : 0; mr = lk > 0 ? ik / lk : 0
	printf "%.3f %.3f %s %s\n", tr, mr, (tr <= t ? "PASS" : "FAIL"), (ik <= lk ? "PASS" : "FAIL") }')
read -r t_ratio m_ratio t_verdict m_verdict <<<"$verdict"

echo
echo "ipcert issue vs lego $LEGO_VERSION run, http-01, 127.0.0.1, Pebble $PEBBLE_VERSION, $RUNS runs each (medians)"
printf '%-20s %10s %16s %14s %16s\n' client "wall ms" "(min-max)" "peak RSS KB" "(min-max)"
printf '%-20s %10s %16s %14s %16s\n' "ipcert issue" "$i_ms" "$(minmax 1 "$work/ipcert.txt")" "$i_kb" "$(minmax 2 "$work/ipcert.txt")"
printf '%-20s %10s %16s %14s %16s\n' "lego $LEGO_VERSION" "$l_ms" "$(minmax 1 "$work/lego.txt")" "$l_kb" "$(minmax 2 "$work/lego.txt")"
printf '%-20s %10s %16s %14s\n' "ratio ipcert/lego" "$t_ratio" "" "$m_ratio"
# lego sleeps 5 s (randomised 2.5-7.5 s) before polling the authorization
# unless the challenge POST already answers "valid", which with Pebble happens
# only when its validator wins a race with the response (more often on a
# loaded machine). Those runs bend lego's median: say how many there were.
fast=$(awk '$1 < 2000' "$work/lego.txt" | wc -l)
echo "lego runs under 2 s (Pebble answered the challenge POST already valid, so no 5 s poll wait): $fast of $RUNS"
echo "time:   ipcert/lego = $t_ratio (target <= $TIME_TARGET): $t_verdict"
echo "memory: ipcert $i_kb KB vs lego $l_kb KB (target ipcert <= lego): $m_verdict"
[ -z "$keep" ] || echo "outputs kept in $keep"
exit 0
