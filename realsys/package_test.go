package realsys

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildDeb runs scripts/deb for version into dir.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "deb"), dir)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "IPCERT_DEB_VERSION="+version)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("scripts/deb: %s", msg)
	}
	return strings.TrimSpace(string(out))
}

// TestDebianPackage installs the package in a clean Debian booted with
// systemd: it installs with apt, `ipcert demo` ends with a certificate,
// lintian reports no error, the units come disabled and `timer install`
// enables them instead of writing a second copy, the renewal service runs,
// an upgrade keeps an issued certificate and its renewal.json byte for
// byte, and remove and purge leave /etc/ipcert.
func TestDebianPackage(t *testing.T) {
	lintian, err := exec.LookPath("lintian")
	require(t, err == nil, "lintian is not installed (apt-get install -y lintian)")
	debs := t.TempDir()
	v1 := buildDeb(t, debs, "0.1.0")
	v2 := buildDeb(t, debs, "0.1.1")
	out, _ := exec.Command(lintian, "--tag-display-limit", "0", v1).CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			t.Errorf("lintian: %s", line)
		}
	}
	t.Logf("lintian:\n%s", out)

	c := bootContainer(t, "")
	for _, d := range []string{v1, v2} {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(c.root, "root", filepath.Base(d)), data, 0o644)
	}
	c.must("apt-get install -y /root/" + filepath.Base(v1) + " 2>&1")
	if v := c.must("ipcert --version"); !strings.Contains(v, "0.1.0") {
		t.Errorf("--version after install: %q", v)
	}
	if mode := strings.TrimSpace(c.must("stat -c '%a %U' /etc/ipcert")); mode != "700 root" {
		t.Errorf("/etc/ipcert is %q, want 700 root", mode)
	}
	c.must("test -f /usr/share/man/man1/ipcert-renew.1.gz && test -f /usr/share/bash-completion/completions/ipcert")
	if st, _ := c.sh("systemctl is-enabled ipcert-renew.timer"); strings.TrimSpace(st) != "disabled" {
		t.Errorf("the packaged timer is %q after install, want disabled", st)
	}
	demo := c.must("cd /tmp && ipcert demo </dev/null 2>&1")
	if !strings.Contains(demo, "openssl verify") {
		t.Errorf("ipcert demo </dev/null did not end with a certificate:\n%s", demo)
	}
	c.must("ipcert issue --ca local --ip 127.0.0.1 --name box --agree-tos --quiet")
	sums := "sha256sum /etc/ipcert/certs/box/renewal.json /etc/ipcert/certs/box/current/cert.pem /etc/ipcert/certs/box/current/privkey.pem"

	install := c.must("ipcert timer install 2>&1")
	if !strings.Contains(install, "/lib/systemd/system/ipcert-renew.timer") {
		t.Errorf("timer install did not use the packaged units:\n%s", install)
	}
	if _, err := c.sh("test -e /etc/systemd/system/ipcert-renew.service"); err == nil {
		t.Error("timer install wrote a second copy of the unit into /etc/systemd/system")
	}
	c.must("systemctl is-enabled ipcert-renew.timer && systemctl is-active ipcert-renew.timer")
	c.must("systemctl start ipcert-renew.service")
	if r := strings.TrimSpace(c.must("systemctl show -p Result --value ipcert-renew.service")); r != "success" {
		j, _ := c.sh("journalctl -u ipcert-renew.service -o cat --no-pager")
		t.Fatalf("the packaged service ran with Result=%s:\n%s", r, j)
	}

	// The renewal's first run keeps its chosen moment in renewal.json;
	// from here on nothing may change it.
	before := c.must(sums)
	c.must("apt-get install -y /root/" + filepath.Base(v2) + " 2>&1")
	if v := c.must("ipcert --version"); !strings.Contains(v, "0.1.1") {
		t.Errorf("--version after the upgrade: %q", v)
	}
	if after := c.must(sums); after != before {
		t.Errorf("the upgrade changed the certificate or renewal.json:\n%s\n%s", before, after)
	}
	c.must("systemctl is-active ipcert-renew.timer")

	c.must("apt-get remove -y ipcert 2>&1")
	if _, err := c.sh("test -e /usr/bin/ipcert"); err == nil {
		t.Error("/usr/bin/ipcert is still there after remove")
	}
	if after := c.must(sums); after != before {
		t.Errorf("remove changed the state:\n%s", after)
	}
	purge := c.must("apt-get purge -y ipcert 2>&1")
	if !strings.Contains(purge, "/etc/ipcert") {
		t.Errorf("purge did not say that /etc/ipcert is kept:\n%s", purge)
	}
	if after := c.must(sums); after != before {
		t.Errorf("purge changed the state:\n%s", after)
	}
}
