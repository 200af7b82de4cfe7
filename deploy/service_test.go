package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

// TestServiceStatusAsksTheManager: whether the system service runs comes
// from systemd (systemctl is-active) or the init script's status, never
// from process names.
func TestServiceStatusAsksTheManager(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "init.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "init.d", "up"), []byte("#!/bin/sh\necho \"up is running\"\n"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "init.d", "down"), []byte("#!/bin/sh\necho \"down is not running ... failed!\"\nexit 3\n"), 0o755)
	if st := ServiceStatus(ctx, nil, "up", false, root); st.Manager != "sysv" || !st.Active {
		t.Errorf("up: %+v", st)
	}
	st := ServiceStatus(ctx, nil, "down", false, root)
	if st.Manager != "sysv" || st.Active || !strings.Contains(st.String(), "not running") || !strings.Contains(st.String(), "down is not running") {
		t.Errorf("down: %+v %s", st, st)
	}
	if st := ServiceStatus(ctx, nil, "caddy", false, root); st.Manager != "" || st.Active || !strings.Contains(st.String(), "no service manager") {
		t.Errorf("no init script: %+v", st)
	}
	rec := &recRunner{fn: func(Cmd) ([]byte, error) { return []byte("active\n"), nil }}
	if st := ServiceStatus(ctx, rec, "nginx", true, root); st.Manager != "systemd" || !st.Active || rec.ran("systemctl", "is-active nginx") != 1 {
		t.Errorf("systemd: %+v %v", st, rec.calls)
	}
}

// TestServiceStatusPrivateNginx: a private nginx runs beside the stopped
// system one. Process names say "nginx is running"; the service manager
// (Debian's init script here, as this host has no systemd) says the system
// service is not, which is what decides whether a reload can work.
func TestServiceStatusPrivateNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	testkit.Need(t, isExec("/etc/init.d/nginx"), "/etc/init.d/nginx is missing (apt-get install -y nginx)")
	ctx := context.Background()
	if st := ServiceStatus(ctx, nil, "nginx", false, "/"); st.Active {
		t.Skipf("the system nginx is running here (%s); this test needs it stopped", st)
	}
	s := nginxServer(t)
	os.WriteFile(filepath.Join(s.prefix, "conf.d", "plain.conf"), []byte("server { listen 127.0.0.1:"+itoa(testkit.FreePort(t))+"; }\n"), 0o644)
	startServer(t, s.log, s.env, s.start[0], s.start[1:]...)
	waitFile(t, filepath.Join(s.prefix, "nginx.pid"))
	var found *Server
	for _, srv := range DetectServers(ctx, Env{}) {
		if srv.Kind == Nginx {
			found = &srv
		}
	}
	if found == nil || !found.Running {
		t.Fatalf("process names should see the private nginx: %+v", found)
	}
	st := ServiceStatus(ctx, nil, "nginx", found.Systemd, "/")
	if st.Active || st.Manager != "sysv" || !strings.Contains(st.String(), "/etc/init.d/nginx status") {
		t.Fatalf("the system service is stopped, got %+v", st)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
