package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scriptedRunner answers each command by its path: an error for those
// listed in fail, and records what ran.
type scriptedRunner struct {
	fail map[string]bool
	ran  []string
}

func (r *scriptedRunner) Run(_ context.Context, c Cmd) ([]byte, error) {
	r.ran = append(r.ran, c.Path)
	if r.fail[c.Path] {
		return []byte("refused by " + c.Path), errors.New("exit status 1")
	}
	return nil, nil
}

// TestUninstall: an ipcert snippet is moved aside, the config tested and
// the server reloaded; a file ipcert did not write is never touched; a
// failing test or reload puts the snippet back.
func TestUninstall(t *testing.T) {
	for _, c := range []struct {
		name     string
		content  string
		fail     string
		removed  bool
		rolled   bool
		errMatch string
	}{
		{"ours", Marker + " for certificate x\nserver {}\n", "", true, false, ""},
		{"not ours", "server {} # the user's\n", "", false, false, ""},
		{"test fails", Marker + "\n", "/test", false, true, "fails its test without ipcert's snippet"},
		{"reload fails", Marker + "\n", "/reload", false, true, "so the snippet was put back"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "conf.d", "ipcert-x.conf")
			if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l := Layout{Kind: Nginx, ConfigPath: conf, Test: Cmd{Path: "/test"}}
			run := &scriptedRunner{fail: map[string]bool{c.fail: true}}
			res, err := Uninstall(context.Background(), l, Cmd{Path: "/reload"}, run, filepath.Join(dir, "keep"))
			if c.errMatch != "" && (err == nil || !strings.Contains(err.Error(), c.errMatch)) || c.errMatch == "" && err != nil {
				t.Fatalf("err %v, want %q", err, c.errMatch)
			}
			if res.Removed != c.removed || res.RolledBack != c.rolled {
				t.Errorf("removed %v rolled back %v, want %v %v", res.Removed, res.RolledBack, c.removed, c.rolled)
			}
			_, statErr := os.Stat(conf)
			if c.removed && statErr == nil || !c.removed && statErr != nil {
				t.Errorf("the config file: %v (removed %v)", statErr, c.removed)
			}
			if c.removed {
				if b, err := os.ReadFile(res.KeptAs); err != nil || string(b) != c.content {
					t.Errorf("kept copy %s: %v", res.KeptAs, err)
				}
			}
		})
	}
}
