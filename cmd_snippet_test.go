package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/deploy"
)

func TestSnippetCommand(t *testing.T) {
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1", "::1")
	st, _ := store.Open(dir)
	name := store.NameFor([]string{"127.0.0.1", "::1"})

	// The name may be left out when there is one certificate; flags may
	// follow the positional arguments.
	code, out, errs := verifyRun(t, "snippet", "nginx", "--state-dir", dir, "--distro", "debian", "--https-port", "8443")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := deploy.Snippet(deploy.Nginx, deploy.SnippetParams{Name: name, Identifiers: []string{"127.0.0.1", "::1"}, CertDir: st.CurrentDir(name), HTTPSPort: 8443, Distro: deploy.Debian})
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("stdout is not the snippet:\n%s", out)
	}
	if !strings.Contains(errs, "--write") || !strings.Contains(errs, "/etc/nginx/conf.d/ipcert-"+name+".conf") || !strings.Contains(errs, "port 80") {
		t.Errorf("stderr should say how to install and warn about the port-80 responder:\n%s", errs)
	}

	// HAProxy: combined.pem appears and renewals keep it.
	code, out, errs = verifyRun(t, "snippet", "haproxy", name, "--state-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("haproxy: exit %d: %s", code, errs)
	}
	var got snippetOut
	if err := json.Unmarshal([]byte(out), &got); err != nil || !strings.Contains(got.Snippet, "combined.pem") {
		t.Fatalf("json: %v %+v", err, got)
	}
	if _, err := os.Stat(filepath.Join(st.CurrentDir(name), store.CombinedFile)); err != nil {
		t.Errorf("combined.pem: %v", err)
	}
	if r, _ := st.LoadRenewal(name); !r.Combined {
		t.Error("renewal.json does not keep combined.pem")
	}
	if !strings.Contains(errs, "combined.pem") {
		t.Errorf("stderr does not mention combined.pem: %s", errs)
	}

	// Hostile values are refused before anything is written.
	for _, bad := range [][]string{
		{"snippet", "nginx", name, "--state-dir", dir, "--webroot", "/var/www;include /etc/shadow"},
		{"snippet", "apache", name, "--state-dir", dir, "--webroot", "/var/www\n</VirtualHost>"},
		{"snippet", "haproxy", name, "--state-dir", dir, "--upstream", "127.0.0.1:80 check\nbackend x"},
		{"snippet", "nginx", "a;b", "--state-dir", dir},
		{"snippet", "nginx", "../x", "--state-dir", dir},
		{"snippet", "lighttpd", name, "--state-dir", dir},
		{"snippet", "--state-dir", dir},
		{"snippet", "nginx", name, "--state-dir", dir, "--distro", "arch"},
	} {
		code, out, errs := verifyRun(t, bad...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "ipcert snippet:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", bad, code, out, errs)
		}
	}
	code, _, errs = verifyRun(t, "snippet", "nginx", name, "--state-dir", dir, "--webroot", `/srv/"x"`)
	if code != exitUsage || !strings.Contains(errs, `web root "/srv/\"x\"" contains '"'`) {
		t.Errorf("quote in web root: %d %s", code, errs)
	}
	// A renewal.json edited to hold a hostile address is refused too (the
	// store already refuses it; deploy.Snippet would as well).
	r, _ := st.LoadRenewal(name)
	r.Identifiers = []string{"127.0.0.1;"}
	st.SaveRenewal(r)
	if code, out, errs := verifyRun(t, "snippet", "nginx", name, "--state-dir", dir); code == exitOK || out != "" || !strings.Contains(errs, `"127.0.0.1;"`) {
		t.Errorf("hostile identifier: %d %s", code, errs)
	}

	// Two certificates: the name is required.
	verifyIssue(t, dir, "::1")
	if code, _, errs := verifyRun(t, "snippet", "nginx", "--state-dir", dir); code != exitUsage || !strings.Contains(errs, "say which") {
		t.Errorf("two certificates: %d %s", code, errs)
	}
}
