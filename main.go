// Command ipcert gets a publicly trusted TLS certificate for a bare IP
// address from Let's Encrypt and keeps it fresh. main only wires: the
// version, then the command line to package cli.
package main

import (
	"os"
	"runtime/debug"

	"github.com/ipcert/ipcert/cli"
)

// version is set at build time with -ldflags "-X main.version=..."; a
// `go install`ed build has none, and takes its module version (or the VCS
// revision) from the build information instead.
var version = "dev"

func init() {
	if version != "dev" {
		return
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
		return
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		version = "dev-" + rev + dirty
	}
}

func main() {
	os.Exit(cli.Main(version))
}
