#!/usr/bin/env bash
# Two builds of one command, interleaved (A, B, A, B, ...), so that the
# machine's drift (other jobs on shared cores) falls on both alike; prints
# the median and the first quartile of each in ms.
#
#   bench/ab.sh N OLD-BINARY NEW-BINARY ARGS...
#   bench/ab.sh 101 /tmp/ipcert-old /tmp/ipcert-new renew --state-dir S --quiet
#   bench/ab.sh 101 /tmp/ipcert-old /tmp/ipcert-new --version   # start-up alone
#
# Both are run with the same ARGS and their output discarded; a command
# that fails is still timed (the exit status is not looked at).
set -euo pipefail
(($# >= 3)) || { echo "usage: bench/ab.sh N OLD NEW ARGS..." >&2; exit 2; }
n=$1 a=$2 b=$3
shift 3
[[ $n =~ ^[0-9]+$ ]] && ((n >= 5)) || { echo "bench/ab.sh: N must be a number >= 5" >&2; exit 2; }
work=$(mktemp -d /tmp/ipcert-bench-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
for ((i = 0; i < n; i++)); do
	s=${EPOCHREALTIME/./}
	"$a" "$@" >/dev/null 2>&1 || true
	e=${EPOCHREALTIME/./}
	echo $((e - s)) >>"$work/a"
	s=${EPOCHREALTIME/./}
	"$b" "$@" >/dev/null 2>&1 || true
	e=${EPOCHREALTIME/./}
	echo $((e - s)) >>"$work/b"
done
for f in a b; do
	bin=$a
	[ "$f" = a ] || bin=$b
	sort -n "$work/$f" | awk -v b="$bin" '{v[NR] = $1} END {printf "%-40s median %7.2f ms  p25 %7.2f ms\n", b, v[int((NR + 1) / 2)] / 1000, v[int((NR + 3) / 4)] / 1000}'
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
