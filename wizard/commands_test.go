package wizard

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// TestProseCommandsWholeAndComplete: a command inside outside text (a
// preflight fix, a diagnosis) is completed for this run and kept on one
// line (issue 24 item 7): "rehearse on staging first: ipcert issue --ca
// staging" gets the run's --ip and --state-dir and is never split.
func TestProseCommandsWholeAndComplete(t *testing.T) {
	cfg := testConfig(false)
	cfg.StateDir = "/var/lib/ipcert"
	m := New(context.Background(), fakeDeps(nil), cfg)
	m.ans.Addrs = []netip.Addr{pub4}
	for _, c := range []struct{ in, want, rest string }{
		{"Fix the failing checks and rehearse on staging first: ipcert issue --ca staging",
			"sudo ipcert issue --ip 81.2.69.160 --ca staging --agree-tos --state-dir /var/lib/ipcert", ""},
		{"Check /etc/resolv.conf and the network; try: getent hosts acme-v02.api.letsencrypt.org.",
			"getent hosts acme-v02.api.letsencrypt.org", "."},
		{"then run ipcert doctor --offline and read it", "ipcert doctor --offline --state-dir /var/lib/ipcert", " and read it"},
		{"install it, then run ipcert status.", "ipcert status --state-dir /var/lib/ipcert", "."},
		{"forward tcp 80 to it (ipcert preflight --map-ports can try UPnP/NAT-PMP).", "(ipcert preflight --map-ports --ip 81.2.69.160", " can try"},
		{"wait an hour and run: sudo ipcert renew --dry-run", "sudo ipcert renew --dry-run --state-dir /var/lib/ipcert", ""},
	} {
		got := m.prose(c.in)
		if !strings.Contains(ui.Plain(got), c.want+c.rest) {
			t.Errorf("prose(%q) = %q, want the command %q", c.in, ui.Plain(got), c.want)
		}
		for _, w := range []int{40, 60, 80} {
			wrapped := ui.Plain(ui.Wrap(got, w))
			if !strings.Contains(wrapped, c.want) {
				t.Errorf("width %d: the command is split:\n%s", w, wrapped)
			}
		}
	}
	if got := m.prose("nothing to run here: ipcert gets certificates"); got != "nothing to run here: ipcert gets certificates" {
		t.Errorf("prose without a command changed: %q", got)
	}
}

// TestSeenTextNeverACommand: what a check saw (a process name, a source's
// answer) is shown as it is: another user's text is never completed into
// a suggested sudo command; only ipcert's own fix is.
func TestSeenTextNeverACommand(t *testing.T) {
	m := New(context.Background(), fakeDeps(nil), testConfig(false))
	m.ans.Addrs = []netip.Addr{pub4}
	evil := "0.0.0.0:80 held by ipcert issue --ca https://evil.invalid/dir"
	it := m.itemOf(preflight.Result{ID: "ports", Summary: evil, Evidence: []string{evil}, Fix: "rehearse on staging first: ipcert issue --ca staging"})
	if it.Summary != evil || it.Detail[0] != evil {
		t.Errorf("seen text was changed: %q / %q", it.Summary, it.Detail[0])
	}
	if !strings.Contains(ui.Plain(it.Fix), "sudo ipcert issue --ip 81.2.69.160 --ca staging") {
		t.Errorf("ipcert's own fix was not completed: %q", ui.Plain(it.Fix))
	}
}
