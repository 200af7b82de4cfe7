package deploy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// RenewalHooks runs what a renewed certificate's renewal.json asks for
// after a new version became current: the user's commands, then the web
// server reload (renew.Deployer; also `ipcert deploy`).
type RenewalHooks struct{}

// Deploy runs r's hooks and reload for the version in currentDir.
func (RenewalHooks) Deploy(ctx context.Context, r *store.Renewal, currentDir string) error {
	spec := HookSpec{Commands: r.DeployHooks}
	if r.Reload != "" {
		kind, err := ParseKind(r.Reload)
		if err != nil {
			return fmt.Errorf("renewal.json \"reload\": %w", err)
		}
		spec.Reload = LayoutFor(kind, DetectDistro("/"), r.Name).ReloadCmd(TimerSystemdRunning("/"))
	}
	var failed []string
	for _, h := range RunHooks(ctx, spec, CertPathsIn(r.Name, r.Identifiers, currentDir)) {
		if !h.OK() {
			out := strings.TrimSpace(h.Output)
			if len(out) > 300 {
				out = out[len(out)-300:]
			}
			if out != "" {
				out = " (output: " + out + ")"
			}
			failed = append(failed, fmt.Sprintf("%q: %s%s", h.Command, h.Error, out))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// ServedCheck checks that an address serves a new certificate, giving the
// server up to ReloadGrace to pick it up after the reload (renew.Verifier;
// also `ipcert deploy`). Served, when set, hears how long that took.
type ServedCheck struct {
	Served func(addr string, leaf *x509.Certificate, took time.Duration)
}

// Verify waits for addr to serve leaf; a mismatch after the wait is the
// error.
func (v ServedCheck) Verify(ctx context.Context, addr string, leaf *x509.Certificate) error {
	res, took, err := WaitServed(ctx, addr, leaf, 0, VerifyOptions{})
	if err != nil {
		return err
	}
	if res.Outcome != Match {
		return fmt.Errorf("%s after waiting %s for the server to pick up the new certificate: %s", res.Outcome, took.Round(100*time.Millisecond), res.Reason)
	}
	if v.Served != nil {
		v.Served(addr, leaf, took)
	}
	return nil
}
