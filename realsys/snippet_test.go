package realsys

import (
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// TestSnippetWriteSystemd: in a Debian system booted with systemd, with
// nginx.service active, --write reloads it (the new certificate is served);
// with the service stopped and only a private nginx running, it asks
// "systemctl is-active nginx", reloads nothing and says so, exit 0 (before,
// process names said "running", systemctl reload failed on the inactive
// unit, and --write reported a failed reload with exit 1).
func TestSnippetWriteSystemd(t *testing.T) {
	c := bootContainer(t, testkit.Binary(t))
	run := c.sh
	const st = "--state-dir /root/st"
	if out, err := run("ipcert issue --ca local --ip 127.0.0.1 --agree-tos --quiet " + st); err != nil {
		t.Fatalf("issue: %v %s", err, out)
	}
	if out, _ := run("systemctl is-active nginx"); strings.TrimSpace(out) != "active" {
		t.Fatalf("nginx.service: %s", out)
	}
	out, err := run("ipcert snippet nginx 127.0.0.1 --write --https-port 8443 --http-port 8080 " + st)
	if err != nil || !strings.Contains(out, "reloaded nginx") {
		t.Fatalf("active service: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := run("ipcert verify 127.0.0.1:8443 --root /root/st/certs/127.0.0.1/current/root.pem --timeout 2s " + st)
		if err == nil && strings.Contains(out, "MATCH") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify after the reload: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The service stopped, a private nginx running: nothing to reload.
	if out, err := run(`systemctl stop nginx && mkdir -p /root/p && printf 'pid /root/p/nginx.pid;\nerror_log /root/p/error.log;\nevents {}\nhttp { server { listen 127.0.0.1:9000; } }\n' > /root/p/nginx.conf && nginx -c /root/p/nginx.conf`); err != nil {
		t.Fatalf("private nginx: %v %s", err, out)
	}
	out, err = run("ipcert snippet nginx 127.0.0.1 --write --https-port 8444 --http-port 8080 " + st)
	if err != nil || strings.Contains(out, "reloaded nginx") || !strings.Contains(out, "Not reloaded: the nginx service is not running (systemctl is-active nginx: inactive)") ||
		!strings.Contains(out, "Some nginx process is running that the service manager did not start") || !strings.Contains(out, "sudo systemctl start nginx") {
		t.Fatalf("stopped service beside a private nginx: %v\n%s", err, out)
	}
}
