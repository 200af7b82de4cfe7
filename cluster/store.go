package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ipcert/ipcert/internal/store"
)

// Config says how to reach the cluster's etcd.
type Config struct {
	Endpoints []string `json:"endpoints"`
	// TLS: the CA that signed etcd's server certificates, and this
	// machine's client certificate and key (etcd's --client-cert-auth).
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// Prefix is where everything of ipcert's lives (default /ipcert/), so
	// that an etcd role can be limited to it.
	Prefix string `json:"prefix,omitempty"`
	// KeyPath is the cluster key's file (sealing); required.
	KeyPath string `json:"key_path"`
}

// DefaultPrefix is where ipcert keeps its keys in etcd.
const DefaultPrefix = "/ipcert/"

// Store is ipcert's view of the cluster's etcd.
type Store struct {
	cli    *clientv3.Client
	prefix string
	seal   *Sealer
}

// Connect opens the cluster: it loads the cluster key (refusing without
// one), dials etcd and checks that it answers.
func Connect(ctx context.Context, c Config) (*Store, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoint; give --etcd URL (ipcert cluster init)")
	}
	if c.KeyPath == "" {
		return nil, errors.New("cluster: no cluster key; give --cluster-key FILE (ipcert cluster init makes one)")
	}
	seal, err := LoadKey(c.KeyPath)
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Context: context.Background()}
	if c.CAFile != "" || c.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cluster: etcd CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cluster: %s holds no PEM certificate", c.CAFile)
			}
		}
		if c.CertFile != "" {
			kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	prefix := c.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &Store{cli: cli, prefix: prefix, seal: seal}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Get(pctx, prefix+"ping"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster: etcd %s does not answer: %w", strings.Join(c.Endpoints, ","), err)
	}
	return s, nil
}

// Close ends the connection (leases it holds expire on their own).
func (s *Store) Close() error { return s.cli.Close() }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, "/") }

// ttlSeconds is a lease's life in whole seconds, at least 1.
func ttlSeconds(d time.Duration) int64 {
	if d < time.Second {
		return 1
	}
	return int64((d + time.Second - 1) / time.Second)
}

// PutChallenge makes an answer available to every machine: for http-01 the
// key authorization by token, for tls-alpn-01 by address (each machine
// builds the acmeIdentifier certificate from it). It lives at most ttl (an
// authorization's life); release removes it at once.
func (s *Store) PutChallenge(ctx context.Context, challenge, id, keyAuth string, ttl time.Duration) (release func(context.Context) error, err error) {
	k, err := s.challengeKey(challenge, id)
	if err != nil {
		return nil, err
	}
	lease, err := s.cli.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return nil, err
	}
	if _, err := s.cli.Put(ctx, k, keyAuth, clientv3.WithLease(lease.ID)); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := s.cli.Revoke(ctx, lease.ID)
		return err
	}, nil
}

// Challenge is the answer for a token (http-01) or an address
// (tls-alpn-01), if one is published.
func (s *Store) Challenge(ctx context.Context, challenge, id string) (string, bool, error) {
	k, err := s.challengeKey(challenge, id)
	if err != nil {
		return "", false, err
	}
	resp, err := s.cli.Get(ctx, k)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false, err
	}
	return string(resp.Kvs[0].Value), true, nil
}

func (s *Store) challengeKey(challenge, id string) (string, error) {
	switch challenge {
	case "http-01":
		// RFC 8555 section 8.3: a token is base64url.
		if id == "" || len(id) > 256 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return "", fmt.Errorf("cluster: %q is not an ACME token", id)
		}
		return s.key("challenges", "http-01", id), nil
	case "tls-alpn-01":
		a, err := netip.ParseAddr(id)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("cluster: %q is not an IP address", id)
		}
		return s.key("challenges", "tls-alpn-01", a.String()), nil
	}
	return "", fmt.Errorf("cluster: unknown challenge %q", challenge)
}

// Lock is one machine's hold on a certificate: the only machine that may
// order it and write its result. It lasts while this process keeps its
// session alive; a crashed or frozen holder loses it when the lease ends.
type Lock struct {
	name    string
	session *concurrency.Session
	mutex   *concurrency.Mutex
}

// ErrLockLost is returned for a write after the lock's lease ended
// (the holder was frozen or cut off, and another machine may hold it now).
var ErrLockLost = errors.New("cluster: the certificate's lock was lost before the write (another machine may hold it now); nothing was written")

// Lock takes the certificate's lock, waiting for another holder as long as
// ctx allows. ttl is how long the lock outlives a holder that stops
// answering.
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(int(ttlSeconds(ttl))))
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(sess, s.key("locks", name))
	if err := m.Lock(ctx); err != nil {
		sess.Close()
		return nil, fmt.Errorf("cluster: lock %s: %w", name, err)
	}
	return &Lock{name: name, session: sess, mutex: m}, nil
}

// Unlock gives the lock back.
func (l *Lock) Unlock(ctx context.Context) error {
	err := l.mutex.Unlock(ctx)
	l.session.Close()
	return err
}

// Lost is closed when the lock's lease ended.
func (l *Lock) Lost() <-chan struct{} { return l.session.Done() }

// Certificate is one version of a certificate as the cluster shares it.
type Certificate struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Identifiers []string  `json:"identifiers"`
	NotAfter    time.Time `json:"not_after"`
	FullChain   []byte    `json:"fullchain"`
	Key         []byte    `json:"-"`          // the private key (PEM), in memory only
	SealedKey   []byte    `json:"sealed_key"` // as stored
	Revision    int64     `json:"-"`          // etcd's revision of the write
	// Settings is what renews it (the issuer's renewal.json without its
	// machine's own hooks, reload and verify address, which never travel:
	// another machine's commands are never run from the store).
	Settings *store.Renewal `json:"settings,omitempty"`
}

// PutCertificate writes a new version of a certificate, only while l is
// still held (fencing): a holder that lost its lock meanwhile writes
// nothing and gets ErrLockLost.
func (s *Store) PutCertificate(ctx context.Context, l *Lock, c Certificate) (int64, error) {
	k := s.key("certs", c.Name)
	c.SealedKey = s.seal.Seal(k, c.Key)
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).If(l.mutex.IsOwner()).Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, ErrLockLost
	}
	return resp.Header.Revision, nil
}

// Certificate reads the newest version of a certificate and opens its key.
func (s *Store) Certificate(ctx context.Context, name string) (Certificate, bool, error) {
	k := s.key("certs", name)
	resp, err := s.cli.Get(ctx, k)
	if err != nil || len(resp.Kvs) == 0 {
		return Certificate{}, false, err
	}
	c, err := s.decodeCert(k, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return c, err == nil, err
}

func (s *Store) decodeCert(k string, v []byte, rev int64) (Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("cluster: %s: %w", k, err)
	}
	key, err := s.seal.Open(k, c.SealedKey)
	if err != nil {
		return c, fmt.Errorf("cluster: %s: %w", k, err)
	}
	c.Key, c.Revision = key, rev
	return c, nil
}

// WatchCertificates sends every certificate written after revision from
// (0: now), in order, until ctx ends. When etcd has compacted the history
// past where the watch stands, it sends the current version of every
// certificate instead, then goes on from there: a machine that was away
// misses nothing it serves.
func (s *Store) WatchCertificates(ctx context.Context, from int64) <-chan Certificate {
	out := make(chan Certificate)
	go func() {
		defer close(out)
		prefix := s.key("certs") + "/"
		next := from
		for ctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
			compacted := false
			for w := range wch {
				if w.CompactRevision != 0 {
					compacted = true
					next = w.CompactRevision
					break
				}
				if err := w.Err(); err != nil {
					break
				}
				for _, ev := range w.Events {
					next = ev.Kv.ModRevision + 1
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					c, err := s.decodeCert(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
					if err != nil {
						continue
					}
					select {
					case out <- c:
					case <-ctx.Done():
						return
					}
				}
			}
			if compacted {
				// Catch up from the current state, then watch from just
				// after it.
				resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
				if err != nil {
					continue
				}
				for _, kv := range resp.Kvs {
					c, err := s.decodeCert(string(kv.Key), kv.Value, kv.ModRevision)
					if err != nil {
						continue
					}
					select {
					case out <- c:
					case <-ctx.Done():
						return
					}
				}
				next = resp.Header.Revision + 1
			}
		}
	}()
	return out
}

// Machine is one machine's registration: what it serves, under a lease
// that ends when it stops answering.
type Machine struct {
	ID        string            `json:"id"`
	Addresses []string          `json:"addresses"` // where it answers validators (its own, for the probe)
	Version   string            `json:"version"`   // ipcert's
	Serves    map[string]int    `json:"serves"`    // certificate name -> version installed
	Verified  map[string]string `json:"verified,omitempty"`
	Seen      time.Time         `json:"seen"`
}

// Register publishes m under a lease of ttl that this process keeps alive
// until ctx ends; Register again to update it.
func (s *Store) Register(ctx context.Context, m Machine, ttl time.Duration) error {
	if m.ID == "" || strings.ContainsAny(m.ID, "/ \n") {
		return fmt.Errorf("cluster: %q is not a machine id", m.ID)
	}
	lease, err := s.cli.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.key("machines", m.ID), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	ka, err := s.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	go func() {
		for range ka {
		}
	}()
	return nil
}

// Machines lists the machines registered now.
func (s *Store) Machines(ctx context.Context) ([]Machine, error) {
	resp, err := s.cli.Get(ctx, s.key("machines")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Machine
	for _, kv := range resp.Kvs {
		var m Machine
		if json.Unmarshal(kv.Value, &m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}
