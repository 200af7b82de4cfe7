package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nobody = 65534

// A folder another user can change the parent of, and a root-only file
// an attacker would like root to write: the planted-link attacks of issue
// 22 against WriteFile and OpenAppend.
func TestWriteRefusesPlantedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: files owned by root and by another user")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("root only\n"), 0o600)
	// The attacker's folder, in which root is asked to write.
	evil := filepath.Join(dir, "evil")
	os.Mkdir(evil, 0o755)
	os.Chown(evil, nobody, nobody)
	check := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
			t.Fatalf("%s: the root-only file was changed: %q", what, b)
		}
	}
	var ue *UntrustedError

	// A link at the file's name: replaced, never followed.
	link := filepath.Join(evil, "ipcert.prom")
	os.Symlink(secret, link)
	os.Lchown(link, nobody, nobody)
	if err := WriteFile(link, []byte("metrics\n"), 0o644, -1, WriteOptions{}); err != nil {
		t.Fatalf("write over a link in a folder root may use: %v", err)
	}
	check("write over a link")
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the link was not replaced by a file: %v %v", fi, err)
	}

	// The folder swapped for a link by the owner of its parent.
	swapped := filepath.Join(evil, "textfile")
	os.Symlink(dir, swapped)
	os.Lchown(swapped, nobody, nobody)
	err := WriteFile(filepath.Join(swapped, "secret"), []byte("x"), 0o644, -1, WriteOptions{})
	if !errors.As(err, &ue) || !ue.Link || !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), "rm "+swapped) {
		t.Errorf("folder swapped for a link: %v", err)
	}
	check("folder swapped for a link")
	if err := MkdirAll(filepath.Join(swapped, "man1"), WriteOptions{}); !errors.As(err, &ue) {
		t.Errorf("MkdirAll through another user's link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "man1")); err == nil {
		t.Error("MkdirAll made a folder through the link")
	}

	// Appending (the debug log): a link, another user's file, a hard link.
	logLink := filepath.Join(evil, "debug.log")
	os.Symlink(secret, logLink)
	os.Lchown(logLink, nobody, nobody)
	if f, err := OpenAppend(logLink, 0o600, WriteOptions{}); err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("append through a planted link: %v", err)
		if f != nil {
			f.Close()
		}
	}
	theirs := filepath.Join(evil, "theirs.log")
	os.WriteFile(theirs, nil, 0o666)
	os.Chown(theirs, nobody, nobody)
	if _, err := OpenAppend(theirs, 0o600, WriteOptions{}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "not root") {
		t.Errorf("append to another user's file: %v", err)
	}
	hard := filepath.Join(evil, "hard.log")
	if err := os.Link(secret, hard); err == nil {
		if _, err := OpenAppend(hard, 0o600, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "hard links") {
			t.Errorf("append to a hard link of a root file: %v", err)
		}
	}
	check("append")

	// Root's own log in root's folder: created 0600, appended to.
	mine := filepath.Join(dir, "logs", "debug.log")
	for range 2 {
		f, err := OpenAppend(mine, 0o600, WriteOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("line\n")
		f.Close()
	}
	if b, _ := os.ReadFile(mine); string(b) != "line\nline\n" {
		t.Errorf("log: %q", b)
	}
	if fi, _ := os.Stat(mine); fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v", fi.Mode())
	}
}

// Strict: what root later runs (a unit, a web-server config) is written
// only where nobody but root can change it.
func TestWriteStrict(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: files owned by root and by another user")
	}
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil")
	os.Mkdir(evil, 0o755)
	os.Chown(evil, nobody, nobody)
	var ue *UntrustedError
	err := WriteFile(filepath.Join(evil, "sub", "ipcert-renew.service"), []byte("x"), 0o644, -1, WriteOptions{Strict: true, Create: true})
	if !errors.As(err, &ue) || ue.Path != evil || !strings.Contains(err.Error(), "uid 65534), not root") {
		t.Errorf("a unit under another user's folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(evil, "sub")); err == nil {
		t.Error("a folder was made inside another user's folder")
	}
	gw := filepath.Join(dir, "gw")
	os.Mkdir(gw, 0o775)
	os.Chmod(gw, 0o775)
	if err := WriteFile(filepath.Join(gw, "a.conf"), []byte("x"), 0o644, -1, WriteOptions{Strict: true}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "0775") {
		t.Errorf("a group-writable folder: %v", err)
	}
	good := filepath.Join(dir, "etc", "systemd", "system", "ipcert-renew.timer")
	if err := WriteFile(good, []byte("[Timer]\n"), 0o644, -1, WriteOptions{Strict: true, Create: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(good); string(b) != "[Timer]\n" {
		t.Errorf("wrote %q", b)
	}
	// Root's own link on the way is followed.
	os.Symlink(filepath.Join(dir, "etc"), filepath.Join(dir, "etc-link"))
	if err := WriteFile(filepath.Join(dir, "etc-link", "systemd", "x.conf"), []byte("y"), 0o644, -1, WriteOptions{Strict: true}); err != nil {
		t.Errorf("through root's own link: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc", "systemd", "x.conf")); string(b) != "y" {
		t.Errorf("root's link: %q", b)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "etc", "systemd", "system"))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
