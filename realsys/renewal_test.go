package realsys

import (
	"strings"
	"testing"
)

// TestRenewalUnderSystemd drives the user's path on a Debian system booted
// with systemd, with Debian's nginx.service: issue from the local CA with
// --reload nginx --verify 127.0.0.1:443, snippet nginx --write, timer
// install (the real systemctl), then one run of ipcert-renew.service
// forced through a drop-in. The job must end in Result=success with the
// new certificate served; it once failed after every good renewal,
// because the check after `systemctl reload nginx` ran before the new
// workers served. The hardened unit must still let the reload, the
// web-root writes and the hooks work. Then the same through cron's entry.
func TestRenewalUnderSystemd(t *testing.T) {
	bin := buildIpcert(t, t.TempDir())
	c := bootContainer(t, bin)

	c.must("systemctl is-active nginx")
	c.must("ipcert issue --ca local --ip 127.0.0.1 --name box --reload nginx --verify 127.0.0.1:443 --agree-tos --quiet")
	t.Log(c.must("ipcert snippet nginx box --write 2>&1"))
	// A second certificate answered through nginx's own web root, with a
	// hook that writes into the state directory.
	c.must(`ipcert issue --ca local --ip 127.0.0.2 --name web --webroot /var/www/html --webroot-port 80 --agree-tos --quiet ` +
		`--deploy-hook 'cp "$IPCERT_FULLCHAIN" /etc/ipcert/hook-ran.pem'`)
	c.must("ipcert verify 127.0.0.1:443")
	before := c.must("openssl x509 -noout -serial -in /etc/ipcert/certs/box/current/cert.pem")

	t.Log(c.must("ipcert timer install 2>&1"))
	c.must("systemctl is-enabled ipcert-renew.timer && systemctl is-active ipcert-renew.timer")
	c.must(`mkdir -p /etc/systemd/system/ipcert-renew.service.d && printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/ipcert renew --force --quiet --state-dir /etc/ipcert\n' >/etc/systemd/system/ipcert-renew.service.d/force.conf && systemctl daemon-reload`)
	out, err := c.sh("systemctl start ipcert-renew.service")
	journal, _ := c.sh("journalctl -u ipcert-renew.service -o cat --no-pager")
	result := strings.TrimSpace(c.must("systemctl show -p Result --value ipcert-renew.service"))
	if err != nil || result != "success" {
		t.Fatalf("ipcert-renew.service: Result=%s (%v) %s\njournal:\n%s", result, err, out, journal)
	}
	if strings.Contains(journal, "error:") || strings.Contains(journal, "warning:") {
		t.Errorf("the forced run logged a problem:\n%s", journal)
	}
	for _, want := range []string{"box: renewed, version 2", "web: renewed, version 2"} {
		if !strings.Contains(journal, want) {
			t.Errorf("the journal lacks %q:\n%s", want, journal)
		}
	}
	after := c.must("openssl x509 -noout -serial -in /etc/ipcert/certs/box/current/cert.pem")
	if after == before {
		t.Fatalf("the service ran but current is the same certificate (%s)", before)
	}
	if out, err := c.sh("ipcert verify 127.0.0.1:443"); err != nil {
		t.Fatalf("after the renewal nginx does not serve the new current: %v\n%s", err, out)
	}
	c.must("cmp /etc/ipcert/hook-ran.pem /etc/ipcert/certs/web/current/fullchain.pem")
	t.Logf("journal of the forced run:\n%s", journal)

	// Cron: a system without the timer. The entry is run as cron runs it
	// (sh -c with cron's environment), --force added as the drop-in did.
	c.must("ipcert timer remove && rm -rf /etc/systemd/system/ipcert-renew.service.d && systemctl daemon-reload")
	t.Log(c.must("ipcert timer install --mode cron 2>&1"))
	line := c.must("grep -v '^#' /etc/cron.d/ipcert-renew | grep renew")
	f := strings.Fields(line)
	if len(f) < 7 || f[5] != "root" {
		t.Fatalf("cron entry %q: want minute hour dom month dow root command", line)
	}
	command := strings.Replace(strings.Join(f[6:], " "), " renew ", " renew --force ", 1)
	before = after
	c.must("env -i SHELL=/bin/sh PATH=/usr/bin:/bin HOME=/root LOGNAME=root sh -c '" + strings.ReplaceAll(command, "'", `'\''`) + "'")
	after = c.must("openssl x509 -noout -serial -in /etc/ipcert/certs/box/current/cert.pem")
	if after == before {
		t.Fatalf("the cron command ran but current is the same certificate")
	}
	c.must("ipcert verify 127.0.0.1:443")
	logged := c.must("journalctl -t ipcert-renew -o cat --no-pager")
	if !strings.Contains(logged, "box: renewed, version 3") {
		t.Errorf("cron's run did not reach the journal through logger:\n%s", logged)
	}
}
