package preflight

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

// asUser runs the real commands as the unprivileged user nobody (uid
// 65534), as ipcert would run for an ordinary user.
type asUser struct{}

func (asUser) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", name}, args...)...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/local/bin:/usr/bin:/bin"}
	return cmd.Output()
}

// userLookPath searches an ordinary user's PATH, which has no sbin.
func userLookPath(name string) (string, error) {
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the user's PATH", name)
}

// TestFirewallAsOrdinaryUser runs the firewall check with the real nft
// and iptables as an ordinary user: their programs are not on the user's
// PATH (/usr/sbin) and the kernel does not let the user read the rules.
// The check must say it could not check, and why, not "no active host
// firewall found".
func TestFirewallAsOrdinaryUser(t *testing.T) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to run the tools as the user nobody)")
	}
	for _, p := range []string{"setpriv", "nft", "iptables-save"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		testkit.Need(t, false, "the ordinary-user firewall test needs "+strings.Join(missing, ", ")+" (.ci/run installs nftables and iptables)")
	}
	env := Env{Root: "/", Runner: asUser{}, LookPath: userLookPath, Getuid: func() int { return 65534 }}
	rep := Run(context.Background(), env, Options{Only: []string{IDFirewall}, HTTPPort: 80, TLSPort: 443}, nil)
	if len(rep.Results) != 1 {
		t.Fatalf("results: %+v", rep.Results)
	}
	r := rep.Results[0]
	text := r.Summary + "\n" + strings.Join(r.Evidence, "\n")
	if r.Status != StatusWarn || !strings.Contains(r.Summary, "could not") || strings.Contains(r.Summary, "no active host firewall") {
		t.Errorf("as an ordinary user: %s: %s", r.Status, text)
	}
	// Why, in the tools' own words.
	for _, want := range []string{"nft", "root", "not permitted"} {
		if !strings.Contains(text, want) {
			t.Errorf("the result does not say why (%q):\n%s", want, text)
		}
	}
}
