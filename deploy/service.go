package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServiceState is what the service manager says about a server's system
// service. "Running" means this, never "a process of that name exists": a
// private instance (started by hand, from another prefix, in a container)
// is not what `systemctl reload` or `service X reload` reaches, and
// Debian's init scripts answer a reload of a stopped service with success.
type ServiceState struct {
	// Manager is "systemd" or "sysv", empty when neither manages the
	// service here (no systemd, no init script).
	Manager string `json:"manager,omitempty"`
	Unit    string `json:"unit"`
	Active  bool   `json:"active"`
	// Check is the command that was asked, Output what it said.
	Check  string `json:"check,omitempty"`
	Output string `json:"output,omitempty"`
}

// String says it in a sentence, for messages.
func (s ServiceState) String() string {
	switch {
	case s.Manager == "":
		return fmt.Sprintf("no service manager knows %s here (no systemd, no /etc/init.d/%s)", s.Unit, s.Unit)
	case s.Active:
		return fmt.Sprintf("the %s service is running (%s)", s.Unit, s.Check)
	}
	out := strings.TrimSpace(s.Output)
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	if out != "" {
		out = ": " + out
	}
	return fmt.Sprintf("the %s service is not running (%s%s)", s.Unit, s.Check, out)
}

// ServiceStatus asks the service manager whether unit is active: systemd
// when it runs (`systemctl is-active`), else the SysV init script's status
// action (LSB: exit 0 only when running). root is "/" except in tests.
func ServiceStatus(ctx context.Context, run Runner, unit string, systemd bool, root string) ServiceState {
	if run == nil {
		run = ExecRunner{}
	}
	if root == "" {
		root = "/"
	}
	st := ServiceState{Unit: unit}
	var c Cmd
	switch script := filepath.Join(root, "etc", "init.d", unit); {
	case systemd:
		st.Manager = "systemd"
		c = Cmd{Path: "systemctl", Args: []string{"is-active", unit}}
	case isExecutable(script):
		st.Manager = "sysv"
		c = Cmd{Path: script, Args: []string{"status"}}
	default:
		return st
	}
	out, err := run.Run(ctx, c)
	st.Check, st.Output = c.String(), strings.TrimSpace(string(out))
	st.Active = err == nil
	return st
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
