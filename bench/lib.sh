# Shared by bench/issue.sh and bench/renew.sh (sourced, not run).
# Expects: $LEGO_VERSION, $PEBBLE_VERSION and a die function; bench_begin
# sets $work, which the other functions use.

# bench_begin NAME checks the tools every benchmark needs, makes $work (a
# temporary folder named after NAME, removed on exit with Pebble stopped)
# and clears IPCERT_* from the environment: each such variable stands for a
# flag, and the benchmarks pass every flag themselves.
bench_begin() {
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing (peak memory comes from 'time -v'): apt-get install -y time"
	command -v go >/dev/null || die "the Go toolchain is needed to build ipcert, lego and Pebble"
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	pebble_pid=
	bench_extra_pids=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	local name
	while IFS='=' read -r name _; do
		if [[ $name == IPCERT_* ]]; then unset "$name"; fi
	done < <(env)
}

bench_cleanup() {
	local p
	for p in $bench_extra_pids; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$pebble_pid" ]; then
		kill "$pebble_pid" 2>/dev/null || true
		wait "$pebble_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}

# bench_tools builds (or reuses, from BENCH_TOOLS_DIR) the lego CLI and
# Pebble at their exact versions and sets tools, certs (Pebble's
# test/certs) and minica (the root both clients trust).
bench_tools() {
	tools=${BENCH_TOOLS_DIR:-$work/tools}
	mkdir -p "$tools"
	if [ ! -x "$tools/lego" ] || [ ! -x "$tools/pebble" ]; then
		echo "building lego $LEGO_VERSION and pebble $PEBBLE_VERSION in $tools (a few minutes)" >&2
		# `go install lego@version` is refused (lego's go.mod has replace
		# directives): a throwaway module requires the exact versions.
		local mod=$work/toolmod
		mkdir -p "$mod"
		cat >"$mod/go.mod" <<MOD
module ipcertbenchtools

go 1.26

require (
	github.com/go-acme/lego/v4 $LEGO_VERSION
	github.com/letsencrypt/pebble/v2 $PEBBLE_VERSION
)
MOD
		(
			cd "$mod"
			export GOFLAGS=-mod=mod
			go mod download github.com/go-acme/lego/v4@$LEGO_VERSION github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION
			go build -o "$tools/lego" github.com/go-acme/lego/v4/cmd/lego
			go build -o "$tools/pebble" github.com/letsencrypt/pebble/v2/cmd/pebble
		) >&2 || die "building lego/pebble failed (is the Go module proxy reachable?)"
	fi
	"$tools/lego" --version | grep -q "$LEGO_VERSION" || die "$tools/lego is not lego $LEGO_VERSION"
	local src
	src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	certs=$src/test/certs
	minica=$certs/pebble.minica.pem
	[ -f "$minica" ] || die "Pebble's test certificates not found under $certs"
}

# bench_free_port prints a TCP port on 127.0.0.1 nobody listens on, below
# Linux's ephemeral range so an outgoing connection is unlikely to take it
# meanwhile.
bench_used_ports=" "
bench_free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		[[ $bench_used_ports == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			bench_used_ports+="$p "
			echo "$p"
			return
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

# bench_start_pebble starts one Pebble on loopback and sets acme_port,
# http_port, tls_port, pebble_pid and dir_url. Profiles as Let's Encrypt
# names them (docs/letsencrypt.md): shortlived is 160 h; retryAfter 0 sends no
# Retry-After header, as Let's Encrypt's Boulder does. No random 0-5 s
# sleep before validations, no injected badNonce, no authorization reuse:
# every run does the full ACME exchange.
bench_start_pebble() {
	acme_port=$(bench_free_port)
	http_port=$(bench_free_port)
	tls_port=$(bench_free_port)
	cat >"$work/pebble.json" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme_port",
    "managementListenAddress": "",
    "certificate": "$certs/localhost/cert.pem",
    "privateKey": "$certs/localhost/key.pem",
    "httpPort": $http_port,
    "tlsPort": $tls_port,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "retryAfter": {"authz": 0, "order": 0},
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "shortlived": {"description": "160 hours, like Let's Encrypt's shortlived", "validityPeriod": 576000},
      "classic": {"description": "90 days, like Let's Encrypt's classic", "validityPeriod": 7776000}
    }
  }
}
JSON
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
		"$tools/pebble" -config "$work/pebble.json" >"$work/pebble.log" 2>&1 &
	pebble_pid=$!
	dir_url=https://127.0.0.1:$acme_port/dir
	for _ in $(seq 100); do
		kill -0 "$pebble_pid" 2>/dev/null || { cat "$work/pebble.log" >&2; die "Pebble exited at start"; }
		(exec 3<>"/dev/tcp/127.0.0.1/$acme_port") 2>/dev/null && return 0
		sleep 0.1
	done
	die "Pebble did not listen on 127.0.0.1:$acme_port within 10 s"
}
