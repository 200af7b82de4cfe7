package cluster

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// Agent is what runs on every machine of a cluster (ipcert agent): it
// answers the CA's validators from the shared store, installs each new
// certificate into the machine's own state directory (the atomic current
// of a machine on its own), runs the machine's deploy step, and keeps its
// registration up to date, so `ipcert cluster status` shows which machine
// serves which version.
type Agent struct {
	Store     *Store
	Local     *store.Store
	ID        string
	Addresses []string
	Version   string
	// Deploy runs after a certificate was installed (reload, verify); nil
	// runs nothing. Its error is reported, and the machine keeps serving
	// the certificate it had (the install is already atomic).
	Deploy func(ctx context.Context, name string) error
	// Log receives one line per thing done; nil discards.
	Log func(string)
	// Seen is told of every validator request answered or not.
	Seen func(remote, what string, answered bool)
}

// registrationTTL is how long a machine stays listed after it stops
// answering.
const registrationTTL = 30 * time.Second

func (a *Agent) logf(format string, args ...any) {
	if a.Log != nil {
		a.Log(fmt.Sprintf(format, args...))
	}
}

// Run answers validators on httpL and tlsL (either may be nil) and keeps
// the machine's certificates in step with the cluster until ctx ends.
func (a *Agent) Run(ctx context.Context, httpL, tlsL net.Listener) error {
	if a.ID == "" {
		return errors.New("cluster: the agent needs a machine id")
	}
	serveErr := make(chan error, 1)
	ans := &Answerer{Store: a.Store, Seen: a.Seen}
	go func() { serveErr <- ans.Serve(ctx, httpL, tlsL) }()

	serves := map[string]int{}
	register := func() {
		m := Machine{ID: a.ID, Addresses: a.Addresses, Version: a.Version, Serves: serves, Seen: time.Now().UTC()}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := a.Store.Register(rctx, m, registrationTTL); err != nil && ctx.Err() == nil {
			a.logf("could not register in the cluster: %v", err)
		}
	}
	rev, err := a.Store.Revision(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	certs, err := a.Store.Certificates(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for _, c := range certs {
		a.install(ctx, c, serves)
	}
	register()
	watch := a.Store.WatchCertificates(ctx, rev+1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cluster: answering validators: %w", err)
		case c, ok := <-watch:
			if !ok {
				return nil
			}
			if a.install(ctx, c, serves) {
				register()
			}
		}
	}
}

// install makes c the machine's current version of its name unless it
// already is (InstallLocal); true when the registration must change.
func (a *Agent) install(ctx context.Context, c Certificate, serves map[string]int) bool {
	_, changed, err := InstallLocal(a.Local, c)
	if err != nil {
		a.logf("%v", err)
		return false
	}
	known := serves[c.Name] == c.Version
	serves[c.Name] = c.Version
	if !changed {
		// Served already (this machine issued it): the registration
		// still says so.
		return !known
	}
	a.logf("%s: installed the cluster's version %d", c.Name, c.Version)
	if a.Deploy != nil {
		if err := a.Deploy(ctx, c.Name); err != nil {
			a.logf("%s: deploy step failed: %v", c.Name, err)
		}
	}
	return true
}

// splitChain is the leaf (the first PEM block) and the rest.
func splitChain(full []byte) (leaf, chain []byte) {
	b, rest := pem.Decode(full)
	if b == nil {
		return full, nil
	}
	return pem.EncodeToMemory(b), bytes.TrimLeft(rest, "\n")
}
