package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Both ways of opening beneath a directory: openat2 (this kernel) and the
// O_NOFOLLOW walk of kernels before 5.6.
func bothModes(t *testing.T, f func(t *testing.T)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "onofollow"
		}
		t.Run(name, func(t *testing.T) {
			old := noOpenat2.Load()
			noOpenat2.Store(fallback)
			defer noOpenat2.Store(old)
			f(t)
		})
	}
}

func openRoot(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestOpenDirAtRefusesLinks(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "real"), 0o755)
		os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link"))
		os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
		fd := openRoot(t, dir)
		d, err := OpenDirAt(fd, "real", "real")
		if err != nil {
			t.Fatalf("real directory: %v", err)
		}
		unix.Close(d)
		_, err = OpenDirAt(fd, "link", "www/link")
		var le *LinkError
		if !errors.As(err, &le) || le.NotDir || le.Target != filepath.Join(dir, "real") || !strings.Contains(err.Error(), "www/link is a symbolic link") {
			t.Errorf("link: %v", err)
		}
		_, err = OpenDirAt(fd, "file", "file")
		if !errors.As(err, &le) || !le.NotDir {
			t.Errorf("file: %v", err)
		}
		if _, err := OpenDirAt(fd, "missing", "missing"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
		if _, err := OpenDirAt(fd, "../x", "x"); err == nil {
			t.Error("a name with a slash was accepted")
		}
	})
}

func TestCreateFileAtNeverFollows(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		old := unix.Umask(0o077)
		defer unix.Umask(old)
		dir := t.TempDir()
		secret := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(secret, []byte("x"), 0o600)
		os.Symlink(secret, filepath.Join(dir, "planted"))
		fd := openRoot(t, dir)
		if _, err := CreateFileAt(fd, "planted", "planted", 0o644); err == nil {
			t.Error("created through a planted link")
		}
		if st, _ := os.Stat(secret); st.Mode().Perm() != 0o600 {
			t.Errorf("secret mode %o", st.Mode().Perm())
		}
		f, err := CreateFileAt(fd, "new", "new", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := IdentityOf(int(f.Fd()))
		f.Close()
		if st, _ := os.Stat(filepath.Join(dir, "new")); st.Mode().Perm() != 0o644 {
			t.Errorf("mode %o under umask 077, want 644", st.Mode().Perm())
		}
		// Replaced by someone else: left alone.
		os.Rename(filepath.Join(dir, "planted"), filepath.Join(dir, "new"))
		if err := RemoveIfSame(fd, "new", id, false); err == nil {
			t.Error("removed a file that was not ours")
		}
		if _, err := os.Lstat(filepath.Join(dir, "new")); err != nil {
			t.Error("the replacement was removed")
		}
	})
}

func TestCheckOwned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need files owned by root and by another user")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.Mkdir(good, 0o700)
	if err := CheckOwned(good, "fix"); err != nil {
		t.Errorf("root's 0700 directory: %v", err)
	}
	if err := CheckOwned(filepath.Join(good, "not", "yet"), "fix"); err != nil {
		t.Errorf("missing components: %v", err)
	}
	other := filepath.Join(dir, "other")
	os.Mkdir(other, 0o700)
	os.Chown(other, 65534, 65534)
	var ue *UntrustedError
	if err := CheckOwned(filepath.Join(other, "sub"), "chown -R root: X"); !errors.As(err, &ue) || ue.Path != other || !strings.Contains(err.Error(), "not root") {
		t.Errorf("another user's parent: %v", err)
	}
	wr := filepath.Join(dir, "groupwritable")
	os.Mkdir(wr, 0o770)
	os.Chmod(wr, 0o770)
	if err := CheckOwned(wr, "fix"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "0770") {
		t.Errorf("group-writable: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	if err := CheckOwned(link, "fix"); err != nil {
		t.Errorf("root's link to a good directory: %v", err)
	}
	os.Lchown(link, 65534, 65534)
	if err := CheckOwned(link, "fix"); !errors.As(err, &ue) || !ue.Link {
		t.Errorf("another user's link: %v", err)
	}
	link2 := filepath.Join(dir, "link2")
	os.Symlink(other, link2)
	if err := CheckOwned(link2, "fix"); !errors.As(err, &ue) || ue.Path != other {
		t.Errorf("root's link to another user's directory: %v", err)
	}
	// /tmp: world-writable with the sticky bit, fine above the path.
	if err := CheckOwned(filepath.Join(os.TempDir(), "ipcert-not-there"), "fix"); err != nil {
		t.Errorf("under /tmp: %v", err)
	}
}
