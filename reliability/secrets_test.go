package reliability

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSecretsStayInKeyFiles issues with a permissive umask and a debug log,
// then looks for private key material in everything ipcert printed or
// logged, and checks the modes of every file that holds a key.
func TestSecretsStayInKeyFiles(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	// Under umask 0 t.TempDir() is 0777, which root rightly refuses above
	// a state directory (issue 12): make it the owner's alone.
	parent := t.TempDir()
	os.Chmod(parent, 0o700)
	dir := filepath.Join(parent, "state")
	debug := filepath.Join(t.TempDir(), "debug.log")
	var outputs []string
	for _, args := range [][]string{
		{"issue", "--ip", "127.0.0.1", "--ip", "::1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--debug", debug},
		{"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--json", "--debug", debug, "--key-type", "rsa2048"},
		{"issue", "--ip", "192.168.0.1", "--ca", "production", "--state-dir", dir},
	} {
		r := ipcert(t, nil, args...)
		outputs = append(outputs, r.stdout, r.stderr)
	}
	// Every other command that exists reads the same state.
	for _, args := range [][]string{{"status", "--state-dir", dir}, {"status", "--json", "--state-dir", dir}, {"doctor", "--state-dir", dir}, {"renew", "--state-dir", dir, "--dry-run"}} {
		r := ipcert(t, nil, args...)
		outputs = append(outputs, r.stdout, r.stderr)
	}
	logData, err := os.ReadFile(debug)
	if err != nil {
		t.Fatalf("debug log: %v", err)
	}
	outputs = append(outputs, string(logData))
	if st, _ := os.Stat(debug); st.Mode().Perm() != 0o600 {
		t.Errorf("debug log mode %o, want 600", st.Mode().Perm())
	}

	var keyFiles, secrets int
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, _ := os.Lstat(path)
		if d.IsDir() {
			if st.Mode().Perm() != 0o700 {
				t.Errorf("%s: directory mode %o, want 700", path, st.Mode().Perm())
			}
			return nil
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		data, _ := os.ReadFile(path)
		if !strings.Contains(string(data), "PRIVATE KEY") {
			return nil
		}
		keyFiles++
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s holds a key but has mode %o", path, st.Mode().Perm())
		}
		for _, line := range strings.Split(string(data), "\n") {
			if len(line) < 40 || strings.HasPrefix(line, "-----") {
				continue
			}
			secrets++
			for _, out := range outputs {
				if strings.Contains(out, line) {
					t.Errorf("key material from %s appears in ipcert's output or log", path)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keyFiles < 3 {
		t.Fatalf("found only %d key files; the test looked in the wrong place", keyFiles)
	}
	for _, out := range outputs {
		if strings.Contains(out, "PRIVATE KEY") {
			t.Error("a PEM private key header appears in output")
		}
	}
	figure(t, "secrets", "%d key files (0600 in 0700 dirs under umask 000); %d key lines searched in %d outputs and the debug log: 0 found", keyFiles, secrets, len(outputs))
}
