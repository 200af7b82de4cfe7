// Package boulder runs Let's Encrypt's own CA software, Boulder, on this
// machine for ipcert's tests: the faithful CA beside Pebble, the quick one.
//
// Boulder is built from the Go module proxy at one pinned version (the
// newest whose go.mod accepts our Go) with cgo (its PKCS#11 signer), and
// cached per machine with everything that does not change between runs:
// the binaries, the internal PKI its services authenticate each other with,
// the CA's keys in SoftHSM (made by Boulder's own ceremony tool) and a
// MariaDB data folder with the schema loaded. Start then brings up the
// smallest set of services that issues as Let's Encrypt does (SA, RA, CA,
// one VA with three remote perspectives, the publisher with a CT log test
// server, the nonce services, the WFE, Redis for the rate limits), all in a
// network namespace of its own, where nothing leaves the machine.
//
// What is changed from Boulder's test/config-next, and why:
//   - no pkimetal lints, OpenTelemetry, syslog, MTC profile or e-mail
//     exporter (not run here; a configured but absent linter fails every
//     issuance);
//   - dnsmasq answers the service names and SRV records consul answers in
//     Boulder's own compose set-up, generated from the services started;
//   - the CT test logs never refuse (FlakinessRate 0), so an issuance does
//     not depend on chance;
//   - the rate limits are Boulder's own defaults except that an address
//     may be certified more often (tests certify the same addresses again),
//     see ratelimitDefaults.
//
// The cache folder is /var/cache/ipcert-test/boulder, or $IPCERT_BOULDER_CACHE.
package boulder

import (
	"os"
	"path/filepath"
)

// Version is the pinned Boulder release: the newest whose go.mod asks for
// no newer Go than 1.26 (later tags need 1.27).
const Version = "v0.20260921.0"

// Module is Boulder's module path.
const Module = "github.com/letsencrypt/boulder"

// CacheDir is where the built Boulder and its fixed state are kept.
func CacheDir() string {
	if d := os.Getenv("IPCERT_BOULDER_CACHE"); d != "" {
		return d
	}
	return "/var/cache/ipcert-test/boulder"
}

// Packages are the Debian packages Boulder needs here; .ci/run installs them.
var Packages = []string{"mariadb-server", "redis-server", "softhsm2", "dnsmasq-base", "gcc", "libc6-dev"}

// Install is a prepared Boulder: binaries and fixed state in Dir.
type Install struct {
	Dir string
}

func (in Install) bin(name string) string   { return filepath.Join(in.Dir, "bin", name) }
func (in Install) src() string              { return filepath.Join(in.Dir, "src") }
func (in Install) certs() string            { return filepath.Join(in.Dir, "certs") }
func (in Install) softhsmConf() string      { return filepath.Join(in.Dir, "softhsm2.conf") }
func (in Install) dbTemplate() string       { return filepath.Join(in.Dir, "mysql") }
func (in Install) stamp(what string) string { return filepath.Join(in.Dir, ".done-"+what) }
