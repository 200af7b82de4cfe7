# Shared by bench/issue.sh and bench/renew.sh (sourced, not run).
# Expects: $work (a temp folder), $tools (holding the pebble binary),
# $certs (Pebble's test/certs folder) and a die function.

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
# names them (FACTS.md): shortlived is 160 h; retryAfter 0 sends no
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
