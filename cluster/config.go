package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ipcert/ipcert/internal/store"
)

// The files of cluster mode in the state directory: without ConfigFile a
// machine is on its own, exactly as before cluster mode existed.
const (
	ConfigFile = "cluster.json"
	KeyFile    = "cluster.key"
)

// LoadConfig reads the state directory's cluster configuration; false
// when the machine is not in a cluster.
func LoadConfig(stateDir string) (Config, bool, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, false, nil
	}
	if err != nil {
		return Config{}, false, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", filepath.Join(stateDir, ConfigFile), err)
	}
	if c.KeyPath == "" {
		c.KeyPath = filepath.Join(stateDir, KeyFile)
	}
	return c, true, nil
}

// SaveConfig writes the configuration (0600, atomically, no link
// followed).
func SaveConfig(stateDir string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(filepath.Join(stateDir, ConfigFile), append(b, '\n'), 0o600)
}

const keyCheckText = "ipcert cluster key check"

// InitKeyCheck leaves a value sealed with this cluster's key, once: a
// machine that joins with another key is told so at once, not at its
// first certificate.
func (s *Store) InitKeyCheck(ctx context.Context) error {
	k := s.key("keycheck")
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(s.seal.Seal(k, []byte(keyCheckText))))).Commit()
	return err
}

// ErrOtherKey is returned by CheckKey when the cluster's values were sealed
// with another key.
var ErrOtherKey = errors.New("this cluster key is not the one the cluster's values are sealed with: copy cluster.key from a machine already in the cluster")

// CheckKey says whether this machine's cluster key opens the cluster's
// values (false, nil: nothing sealed yet).
func (s *Store) CheckKey(ctx context.Context) (bool, error) {
	k := s.key("keycheck")
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return false, err
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	if _, err := s.seal.Open(k, resp.Kvs[0].Value); err != nil {
		return false, ErrOtherKey
	}
	return true, nil
}

// Certificates lists the newest version of every certificate the cluster
// holds.
func (s *Store) Certificates(ctx context.Context) ([]Certificate, error) {
	prefix := s.key("certs") + "/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []Certificate
	for _, kv := range resp.Kvs {
		c, err := s.decodeCert(string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Revision is etcd's current revision: where a watch that has just listed
// everything goes on from.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.key("keycheck"))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}
