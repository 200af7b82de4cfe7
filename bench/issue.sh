#!/usr/bin/env bash
# Issuance benchmark (issues #2, #18): `ipcert issue` against the lego CLI
# v4.35.2, both getting a shortlived certificate for 127.0.0.1 over http-01
# from ONE Pebble v2.10.3 process on loopback, each with a fresh account
# every run, in two modes:
#   instant  Pebble's validator reaches the responder at once (Pebble
#            validates before it has answered the challenge POST);
#   le-like  a TCP proxy (bench/delayproxy) holds each validator connection
#            for BENCH_LE_DELAY (1.5 s) first, so the challenge is still
#            pending after the POST, as at Let's Encrypt, where several
#            remote perspectives take seconds. Reported: wall time, and the
#            overshoot (wall time minus the delay).
# Then ipcert alone: 25 addresses (127.0.0.1-25) in one order, instant mode.
#
# Usage: bench/issue.sh            (from anywhere; see bench/README.md)
#   BENCH_RUNS=9        timed runs per client and mode (at least 7)
#   BENCH_MODES="instant le-like"   which modes to run
#   BENCH_LE_DELAY=1.5s the validator delay of the le-like mode
#   BENCH_TOOLS_DIR=DIR reuse lego/pebble binaries built there (built into DIR
#                       when missing); default: a temporary folder, removed
#   BENCH_DEBUG=1       also pass --debug to ipcert and keep its logs in
#                       $BENCH_KEEP (a folder that is not removed)
#   BENCH_KEEP=DIR      keep every run's output and state there
#   BENCH_IPCERT=PATH   measure this ipcert binary (an older build) instead of
#                       building the checkout
#
# Prints per-client medians, the ratios, and PASS/FAIL against the targets
# (instant: ipcert <= 0.15 x lego's time, ipcert RSS <= lego's; le-like:
# ipcert's overshoot <= 150 ms, ipcert <= 0.5 x lego's time; 25 addresses:
# <= 150 ms). Exits 0 whatever the verdict; 1 when a run or the setup fails.
# acme.sh is not measured: it is not packaged in Debian and cannot be
# fetched here. Only loopback is used: Pebble listens on 127.0.0.1 and
# validates 127.0.0.x on free high ports; ports 80/443 are never bound.
set -euo pipefail

LEGO_VERSION=v4.35.2
PEBBLE_VERSION=v2.10.3
RUNS=${BENCH_RUNS:-9}
MODES=${BENCH_MODES:-instant le-like}
LE_DELAY=${BENCH_LE_DELAY:-1.5s}
TIME_TARGET=0.15
LE_RATIO_TARGET=0.5
LE_OVERSHOOT_TARGET=150
MULTI_TARGET=150

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
if [ -n "${BENCH_IPCERT:-}" ]; then
	# Another build to compare with (an older commit): BENCH_IPCERT=path.
	cp "$BENCH_IPCERT" "$work/ipcert" || die "BENCH_IPCERT=$BENCH_IPCERT: cannot copy"
else
	echo "building ipcert from $repo" >&2
	(cd "$repo" && go build -o "$work/ipcert" .) || die "building ipcert failed"
fi
(cd "$repo" && go build -o "$work/delayproxy" ./bench/delayproxy) || die "building bench/delayproxy failed"

bench_tools

# --- Pebble and the delaying proxy -------------------------------------------
# Pebble validates on http_port, where the proxy listens (all of 127/8, for
# the 25-address order) and passes each connection, after the delay in
# $work/delay, to the same address on resp_port, where the client's
# responder listens.
bench_start_pebble
resp_port=$(bench_free_port)
echo 0s >"$work/delay"
"$work/delayproxy" -listen "0.0.0.0:$http_port" -to-port "$resp_port" -delay-file "$work/delay" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
bench_extra_pids+=" $proxy_pid"
echo "Pebble $PEBBLE_VERSION at $dir_url, validating on :$http_port (proxy to :$resp_port); $RUNS runs per client and mode" >&2

# --- runs --------------------------------------------------------------------
# run CLIENT TAG N [IPS...]: one issuance with a fresh state folder (so a
# fresh account); appends "wall_ms rss_kb" to $work/CLIENT-TAG.txt.
run() {
	local client=$1 tag=$2 n=$3
	shift 3
	local state=$work/state-$client-$tag-$n out=$work/out-$client-$tag-$n
	local tf=$out.time start end rc=0
	mkdir -p "$state"
	local cmd ips=("$@") ip
	[ ${#ips[@]} -gt 0 ] || ips=(127.0.0.1)
	case $client in
	ipcert)
		cmd=("$work/ipcert" issue --ca "$dir_url" --ca-root "$minica" --agree-tos --state-dir "$state" --quiet)
		for ip in "${ips[@]}"; do cmd+=(--ip "$ip"); done
		# One address: its own socket; several: one socket for all of 127/8.
		if [ ${#ips[@]} -eq 1 ]; then cmd+=(--http-listen "127.0.0.1:$resp_port"); else cmd+=(--http-listen "0.0.0.0:$resp_port"); fi
		[ -z "${BENCH_DEBUG:-}" ] || cmd+=(--debug "$keep/ipcert-$tag-$n.debug.log")
		;;
	lego)
		# --disable-cn: Let's Encrypt refuses an IP in the CSR's Common Name
		# (docs/letsencrypt.md); Pebble would not, but the request should be the one
		# that works against Let's Encrypt.
		cmd=(env LEGO_CA_CERTIFICATES="$minica" "$tools/lego" --server "$dir_url"
			--email bench@example.org --accept-tos --path "$state" --domains 127.0.0.1
			--disable-cn --http --http.port "127.0.0.1:$resp_port" run --profile shortlived)
		;;
	esac
	start=${EPOCHREALTIME/./}
	/usr/bin/time -v -o "$tf" "${cmd[@]}" >"$out.stdout" 2>"$out.stderr" || rc=$?
	end=${EPOCHREALTIME/./}
	if ((rc != 0)); then
		echo "--- $client $tag run $n failed (exit $rc): ${cmd[*]}" >&2
		cat "$out.stdout" "$out.stderr" >&2
		echo "--- Pebble log (last 30 lines)" >&2
		tail -n 30 "$work/pebble.log" >&2
		exit 1
	fi
	local rss
	rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf")
	[ -n "$rss" ] || die "no peak memory in /usr/bin/time output for $client run $n"
	echo "$(((end - start) / 1000)) $rss" >>"$work/$client-$tag.txt"
	printf '  %-6s %-8s run %2d: %6d ms %8d KB\n' "$client" "$tag" "$n" $(((end - start) / 1000)) "$rss" >&2
	if [ -n "$keep" ]; then
		cp "$out.stdout" "$keep/$client-$tag-$n.stdout"
		cp "$out.stderr" "$keep/$client-$tag-$n.stderr"
		cp "$tf" "$keep/$client-$tag-$n.time"
	fi
	rm -rf "$state"
}

median() { # column of FILE
	sort -n <(cut -d' ' -f"$1" "$2") | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { # column of FILE -> "min-max"
	cut -d' ' -f"$1" "$2" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'
}

# mode NAME: both clients, alternating, RUNS times each, then the report.
mode() {
	local m=$1 delay_ms=0
	if [ "$m" = le-like ]; then
		echo "$LE_DELAY" >"$work/delay"
		delay_ms=$(awk -v d="$LE_DELAY" 'BEGIN { if (d ~ /ms$/) { sub(/ms$/, "", d); print d + 0 } else { sub(/s$/, "", d); print int(d * 1000) } }')
	else
		echo 0s >"$work/delay"
	fi
	# One untimed run each first: loads both binaries into the page cache
	# and warms Pebble, so neither client pays that alone.
	run ipcert "$m" 0
	run lego "$m" 0
	: >"$work/ipcert-$m.txt"
	: >"$work/lego-$m.txt"
	# Alternate the clients, and who goes first in each pair, to spread
	# drift (other load on the machine, Pebble's growing database).
	local i
	for ((i = 1; i <= RUNS; i++)); do
		if ((i % 2)); then
			run ipcert "$m" "$i"
			run lego "$m" "$i"
		else
			run lego "$m" "$i"
			run ipcert "$m" "$i"
		fi
	done
	local i_ms l_ms i_kb l_kb
	i_ms=$(median 1 "$work/ipcert-$m.txt")
	l_ms=$(median 1 "$work/lego-$m.txt")
	i_kb=$(median 2 "$work/ipcert-$m.txt")
	l_kb=$(median 2 "$work/lego-$m.txt")
	echo
	echo "== mode $m: ipcert issue vs lego $LEGO_VERSION run, http-01, 127.0.0.1, Pebble $PEBBLE_VERSION, validator delay ${delay_ms} ms, $RUNS runs each (medians)"
	printf '%-20s %10s %16s %14s %16s %14s\n' client "wall ms" "(min-max)" "peak RSS KB" "(min-max)" "overshoot ms"
	printf '%-20s %10s %16s %14s %16s %14s\n' "ipcert issue" "$i_ms" "$(minmax 1 "$work/ipcert-$m.txt")" "$i_kb" "$(minmax 2 "$work/ipcert-$m.txt")" $((i_ms - delay_ms))
	printf '%-20s %10s %16s %14s %16s %14s\n' "lego $LEGO_VERSION" "$l_ms" "$(minmax 1 "$work/lego-$m.txt")" "$l_kb" "$(minmax 2 "$work/lego-$m.txt")" $((l_ms - delay_ms))
	local t_ratio m_ratio
	t_ratio=$(awk -v a="$i_ms" -v b="$l_ms" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	m_ratio=$(awk -v a="$i_kb" -v b="$l_kb" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	printf '%-20s %10s %16s %14s\n' "ratio ipcert/lego" "$t_ratio" "" "$m_ratio"
	verdict() { awk -v ok="$1" 'BEGIN { print (ok ? "PASS" : "FAIL") }'; }
	if [ "$m" = instant ]; then
		# lego sleeps 5 s (randomised 2.5-7.5 s) before polling unless the
		# challenge POST already answers "valid", which with Pebble happens
		# only when its validator wins a race with the response. Those runs
		# bend lego's median: say how many there were.
		echo "lego runs under 2 s (the challenge POST answered valid, so no 5 s wait): $(awk '$1 < 2000' "$work/lego-$m.txt" | wc -l) of $RUNS"
		echo "instant time:   ipcert/lego = $t_ratio (target <= $TIME_TARGET): $(verdict "$(awk -v r="$t_ratio" -v t="$TIME_TARGET" 'BEGIN{print (r <= t)}')")"
		echo "instant memory: ipcert $i_kb KB vs lego $l_kb KB (target ipcert <= lego): $(verdict $((i_kb <= l_kb)))"
	else
		echo "le-like overshoot: ipcert $((i_ms - delay_ms)) ms (target <= $LE_OVERSHOOT_TARGET): $(verdict $((i_ms - delay_ms <= LE_OVERSHOOT_TARGET)))"
		echo "le-like time:   ipcert/lego = $t_ratio (target <= $LE_RATIO_TARGET): $(verdict "$(awk -v r="$t_ratio" -v t="$LE_RATIO_TARGET" 'BEGIN{print (r <= t)}')")"
	fi
}

for m in $MODES; do
	case $m in instant | le-like) mode "$m" ;; none) ;; *) die "unknown mode $m (instant, le-like, none)" ;; esac
done

# --- 25 addresses in one order (ipcert alone, instant) ---------------------
echo 0s >"$work/delay"
ips=()
for i in $(seq 1 25); do ips+=("127.0.0.$i"); done
run ipcert multi 0 "${ips[@]}"
: >"$work/ipcert-multi.txt"
for ((i = 1; i <= RUNS; i++)); do run ipcert multi "$i" "${ips[@]}"; done
multi_ms=$(median 1 "$work/ipcert-multi.txt")
echo
echo "== 25 addresses (127.0.0.1-25) in one order, instant: ipcert median $multi_ms ms ($(minmax 1 "$work/ipcert-multi.txt")), $(median 2 "$work/ipcert-multi.txt") KB (target <= $MULTI_TARGET ms): $(awk -v a="$multi_ms" -v t="$MULTI_TARGET" 'BEGIN { print (a <= t ? "PASS" : "FAIL") }')"
[ -z "$keep" ] || echo "outputs kept in $keep"
exit 0
