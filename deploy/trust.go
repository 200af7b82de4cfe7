package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipcert/ipcert/acmeflow/safefs"
)

// CheckHookProgram refuses, when run as root, a deploy hook whose program
// is given as a file path that another user could change (the file or a
// directory above it): renew runs hooks as root after every renewal
// (issue 12, docs/security.md). A command found through PATH is as
// trusted as root's PATH, and is not checked.
func CheckHookProgram(command string) error {
	f := strings.Fields(command)
	if os.Geteuid() != 0 || len(f) == 0 || !filepath.IsAbs(f[0]) {
		return nil
	}
	prog := f[0]
	return safefs.CheckOwned(prog, fmt.Sprintf("make it root's (sudo chown root: %s && sudo chmod go-w %s), or move it to /usr/local/sbin", prog, prog))
}
