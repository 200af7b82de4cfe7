package diagnosis

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/safefs"
)

// local: the failure is this machine's (the state directory's disk,
// mount, permissions or ownership), not the network's: each has its own
// fix, never "check the address, ports and firewall".
func (g *diag) local() bool {
	err := g.err
	var le *os.LinkError
	var ue *safefs.UntrustedError
	untouched := " The current certificate was not touched."
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		g.set(DiagDiskFull, "The disk is full", "Writing the state directory failed for lack of space (or quota): "+g.errText()+".",
			"Free some space on the file system the error names (df -h shows which is full), then run again."+untouched, cmd("df", "-h"), false)
		g.d.Retry = "when there is free space"
	case errors.Is(err, syscall.EROFS):
		g.set(DiagReadOnly, "The state directory is on a read-only file system", g.errText()+".",
			"Remount it read-write, or choose a writable state directory with --state-dir."+untouched, cmd("findmnt", "-T", g.stateDir()), false)
	case errors.As(err, &ue):
		g.set(DiagStateUntrusted, "Refused: another user could change these files", g.errText()+".",
			"Follow the fix in the message: root only uses a state directory, binaries and hooks that only root can change (docs/security.md).", nil, false)
	case errors.As(err, &le) && le.Op == "rename":
		g.set(DiagStoreRename, "Moving the new files into place failed", "rename(2) of "+le.Old+" to "+le.New+" failed: "+le.Err.Error()+". ipcert writes every file beside its final place and renames it, so this is the state directory's file system refusing (a full or read-only disk, an immutable attribute, a bind mount of single files, or something else holding the name).",
			"Check the state directory (ls -la and lsattr on "+filepath.Dir(le.New)+"), fix what the error names, and run again."+untouched, cmd("ls", "-la", filepath.Dir(le.New)), false)
	case errors.Is(err, fs.ErrPermission) && (g.d.Step == acmeflow.StepStore || g.d.Step == "" || g.d.Step == acmeflow.StepAccount):
		g.set(DiagStateNotWritable, "The state directory is not writable", g.errText()+".",
			"Run as the state directory's owner (usually root: sudo), or choose another with --state-dir."+untouched, nil, false)
	default:
		return false
	}
	return true
}

// responder: the local challenge responder could not start.
func (g *diag) responder(t string) bool {
	owner := ""
	if g.ev.PortOwner != "" {
		owner = " (" + g.ev.PortOwner + ")"
	}
	switch {
	// Local wording, not the CA's: our responder's listen errors
	// (acmeflow engine.go bindHint: "cannot listen on ADDR: listen tcp
	// ...: bind: address already in use" / "permission denied") and the
	// web root's (acmeflow responder.go: "web root DIR is not writable",
	// "web root DIR is not a directory", "web root DIR: ... no such file
	// or directory"; safefs: "... is a symbolic link").
	case contains(t, "address already in use"):
		g.portBusy(owner)
		if g.ev.PortOwner != "" {
			g.evidence("port owner: %s", g.ev.PortOwner)
		}
		return true
	case errors.Is(g.err, os.ErrPermission) && contains(t, "listen"), contains(t, "permission denied") && contains(t, "listen"):
		g.set(DiagPortForbidden, "Not allowed to listen on the validation port", "Ports below 1024 need root or CAP_NET_BIND_SERVICE (or a lower net.ipv4.ip_unprivileged_port_start).",
			"Run as root, or grant the capability to the binary once.", cmd("sudo", "setcap", "cap_net_bind_service=+ep", selfPath()), false)
		return true
	case contains(t, "web root") && contains(t, "not writable", "permission denied", "read-only"):
		g.set(DiagWebRootNotWritable, "The web root is not writable", "ipcert must write the answer into "+g.ev.WebRoot+"/.well-known/acme-challenge/ and may not.",
			"Run as a user that can write there (often root or www-data), or use the standalone responder.", g.issueCmd(issueArgs{sudo: true}), false)
		return true
	case contains(t, "web root") && contains(t, "is a symbolic link"):
		g.set(DiagWebRootLink, "A link inside the web root was refused", g.errText()+".",
			"Make .well-known and .well-known/acme-challenge real directories inside the web root (or let ipcert create them), or use the standalone responder.", cmd("ls", "-la", g.ev.WebRoot+"/.well-known"), false)
		return true
	case contains(t, "web root") && contains(t, "no such file", "not a directory"):
		g.set(DiagWebRootMissing, "The web root does not exist", "The directory given with --webroot ("+g.ev.WebRoot+") does not exist or is not a directory, so ipcert cannot put the answer there.",
			"Give the document root your web server serves for this address; ipcert preflight shows the default server's root.", g.preflightCmd(), false)
		return true
	}
	return false
}
