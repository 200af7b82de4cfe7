package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/testkit"
)

func needRoot(t *testing.T) {
	t.Helper()
	testkit.NeedRoot(t, "the ownership checks (they apply to root only)")
}

const nobody = 65534

func TestOpenRefusesAnotherUsersStateDir(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "squat")
	os.Mkdir(dir, 0o755)
	os.Chown(dir, nobody, nobody)
	_, err := Open(dir)
	var ue *safefs.UntrustedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "chown -R root: "+dir+"; chmod 700 "+dir) {
		t.Fatalf("Open = %v", err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("Open changed the refused directory's mode to %04o", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Open created %v in the refused directory", entries)
	}
	// A link to a good directory, made by another user.
	good := filepath.Join(t.TempDir(), "good")
	os.Mkdir(good, 0o700)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(good, link)
	os.Lchown(link, nobody, nobody)
	if _, err := Open(link); !errors.As(err, &ue) || !ue.Link {
		t.Errorf("Open(another user's link) = %v", err)
	}
}

func TestPlantedFilesInsideRootsState(t *testing.T) {
	needRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root(), "certs", "x")
	os.MkdirAll(dir, 0o700)
	rj := filepath.Join(dir, "renewal.json")
	os.WriteFile(rj, []byte(`{"schema":1,"name":"x","identifiers":["127.0.0.1"],"ca":"local","directory":"d","challenge":"http-01","deploy_hooks":["id"]}`), 0o600)
	if _, err := s.LoadRenewal("x"); err != nil {
		t.Fatalf("root's own renewal.json: %v", err)
	}
	os.Chown(rj, nobody, nobody)
	if _, err := s.LoadRenewal("x"); err == nil || !strings.Contains(err.Error(), "belongs to user nobody") {
		t.Errorf("another user's renewal.json: %v", err)
	}
	os.Chown(rj, 0, 0)
	os.Chmod(rj, 0o666)
	if _, err := s.LoadRenewal("x"); err == nil || !strings.Contains(err.Error(), "0666") {
		t.Errorf("world-writable renewal.json: %v", err)
	}
	os.Chmod(rj, 0o600)
	os.Chown(dir, nobody, nobody)
	if _, err := s.LoadRenewal("x"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("renewal.json in another user's folder: %v", err)
	}
	os.Chown(dir, 0, 0)
	// A renewal.json that is a link to a file root owns elsewhere.
	other := filepath.Join(t.TempDir(), "other.json")
	data, _ := os.ReadFile(rj)
	os.WriteFile(other, data, 0o600)
	os.Remove(rj)
	os.Symlink(other, rj)
	if _, err := s.LoadRenewal("x"); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("renewal.json as a link: %v", err)
	}
}

func TestLockNeverFollowsALink(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep me\n"), 0o600)
	lock := filepath.Join(s.Root(), ".lock")
	os.Symlink(target, lock)
	if _, err := s.Lock(context.Background(), false); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Lock through a link = %v", err)
	}
	os.Remove(lock)
	if err := os.Link(target, lock); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(context.Background(), false); err == nil || !strings.Contains(err.Error(), "hard link") {
		t.Errorf("Lock on a hard link = %v", err)
	}
	if data, _ := os.ReadFile(target); string(data) != "keep me\n" {
		t.Errorf("the lock's target was changed: %q", data)
	}
	os.Remove(lock)
	unlock, err := s.Lock(context.Background(), false)
	if err != nil {
		t.Fatalf("a fresh lock: %v", err)
	}
	unlock()
	var st syscall.Stat_t
	if err := syscall.Lstat(lock, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("the lock is not a regular file: %v", err)
	}
}
