package deploy

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/ipcert/ipcert/internal/store"
)

// VerifyStoredOptions tunes VerifyStored.
type VerifyStoredOptions struct {
	VerifyOptions
	// Name is the stored certificate to compare with; "" is the one
	// store.Find picks for the address and what it serves.
	Name string
	// Warn hears about a stored certificate that could not be read: the
	// served one is then compared with nothing. Nil drops it.
	Warn func(error)
}

// StoredVerifyResult is what `ipcert verify` reports: the handshake and
// which stored certificate it was compared with, and why that one.
type StoredVerifyResult struct {
	VerifyResult
	Name    string `json:"name,omitempty"`
	Version int    `json:"version,omitempty"`
	// ChosenBy says how Name was chosen (store.Found.By); Candidates are
	// every stored certificate covering the address.
	ChosenBy   string   `json:"chosen_by,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
	// Stored is the stored current version compared with (zero: none).
	Stored store.Version `json:"-"`
	// ServedVersion is the stored version of Name that is served, when
	// ChosenBy is "earlier version" (0: none found).
	ServedVersion int `json:"-"`
}

// VerifyStored is `ipcert verify`'s work: the handshake with addr
// (IP:PORT) first, because which stored certificate to expect may depend
// on what the address serves (store.Find with Query.Served); then the
// comparison with that certificate's current version. st may be nil (no
// state directory: nothing to compare with). The error is Verify's (bad
// arguments) or store.Find's (no certificate can be chosen).
func VerifyStored(ctx context.Context, st *store.Store, addr string, opts VerifyStoredOptions) (StoredVerifyResult, error) {
	vo := opts.VerifyOptions
	vo.Expected = nil
	res, err := Verify(ctx, addr, vo)
	if err != nil {
		return StoredVerifyResult{}, err
	}
	out := StoredVerifyResult{}
	var expected *x509.Certificate
	if st != nil {
		found := store.Found{Name: opts.Name, By: "name"}
		if opts.Name == "" {
			found, err = st.Find(store.Query{Arg: addr, Served: res.Leaf})
			if err != nil {
				return StoredVerifyResult{}, err
			}
		} else if f, err := st.Find(store.Query{Arg: addr}); err == nil {
			found.Candidates = f.Candidates
		}
		out.Name, out.ChosenBy, out.Candidates = found.Name, found.By, found.Candidates
		if out.Name != "" {
			stored, err := st.CurrentVersion(out.Name)
			if err != nil {
				if opts.Warn != nil {
					opts.Warn(fmt.Errorf("certificate %s: %v", out.Name, err))
				}
			} else {
				out.Stored, expected, out.Version = stored, stored.Leaf, stored.N
			}
		}
	}
	Judge(&res, expected)
	out.VerifyResult = res
	if out.ChosenBy == "earlier version" && st != nil && res.Outcome == Mismatch {
		out.ServedVersion = servedVersion(st, out.Name, res.Leaf)
	}
	return out, nil
}

// servedVersion is the stored version of name whose leaf is leaf (0: none).
func servedVersion(st *store.Store, name string, leaf *x509.Certificate) int {
	vs, _ := st.Versions(name)
	for _, n := range vs {
		if v, err := st.LoadVersion(name, n); err == nil && leaf != nil && v.Leaf.Equal(leaf) {
			return n
		}
	}
	return 0
}

// LoadRoots reads a PEM file of root certificates (verify --root, an own
// CA's --ca-root).
func LoadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
