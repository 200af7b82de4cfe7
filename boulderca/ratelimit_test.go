package boulderca

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBoulderRateLimit: Boulder allows an identical set of addresses three
// certificates in three hours here (internal/boulder's limits); the fourth
// order is refused with 429, rateLimited, a Retry-After and the time in
// its detail. ipcert says it is a rate limit and when to retry (never
// "now"), and keeps the working certificate. A renewal refused the same
// way waits for the CA's time: renewal.json keeps it, and the next run
// sends nothing before it.
func TestBoulderRateLimit(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	addr, _ := fresh(t, s)
	ip := addr.String()
	for i := 0; i < 3; i++ {
		mustIssue(t, s, state, "--ip", ip, "--name", "limited")
	}
	out, errs, code := ipcert(t, s, append([]string{"issue", "--ip", ip, "--name", "limited"}, caArgs(s, state)...)...)
	said := strings.Join(strings.Fields(errs+out), " ")
	t.Logf("fourth issuance: exit %d\n%s", code, errs+out)
	if code != 1 {
		t.Fatalf("fourth issuance for one address in 3 hours: exit %d, want 1", code)
	}
	if !strings.Contains(said, "Rate limited") {
		t.Errorf("the diagnosis does not say it is a rate limit")
	}
	// When: Boulder's time, in ipcert's own retry line.
	if !regexp.MustCompile(`retry: yes, not before 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC`).MatchString(said) {
		t.Errorf("the diagnosis does not say when to retry (retry: yes, not before TIME)")
	}
	if strings.Contains(said, "retry: yes, now") {
		t.Errorf("the diagnosis says to retry now under a rate limit")
	}
	checkShape(t, s, state, "limited", nil2(addr))

	out, errs, code = ipcert(t, s, "renew", "--force", "--state-dir", state)
	t.Logf("renew --force: exit %d\n%s%s", code, errs, out)
	if code != 1 {
		t.Fatalf("renew --force under the rate limit: exit %d, want 1", code)
	}
	var r struct {
		NextAttempt time.Time `json:"next_attempt"`
		Reason      string    `json:"next_attempt_reason"`
	}
	b, err := os.ReadFile(filepath.Join(state, "certs", "limited", "renewal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Boulder's token bucket gives one certificate back an hour: its
	// detail names the moment; the next attempt is not before it.
	m := regexp.MustCompile(`retry after (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC`).FindStringSubmatch(errs)
	if m == nil {
		t.Fatalf("Boulder's detail names no time to retry:\n%s", errs)
	}
	at, err := time.Parse("2006-01-02 15:04:05", m[1])
	if err != nil {
		t.Fatal(err)
	}
	if r.NextAttempt.Before(at) || !strings.Contains(r.Reason, "Retry-After") {
		t.Errorf("renewal.json: next attempt %s (%q), want not before Boulder's %s (Retry-After)", r.NextAttempt, r.Reason, at)
	}
	orders := strings.Count(s.Log("wfe2", 1<<30), "/acme/new-order")
	out, errs, code = ipcert(t, s, "renew", "--state-dir", state)
	t.Logf("renew: exit %d\n%s%s", code, errs, out)
	if code != 0 || !strings.Contains(out+errs, "Retry-After") {
		t.Errorf("renew before the CA's time: exit %d, want 0 and the wait named", code)
	}
	if n := strings.Count(s.Log("wfe2", 1<<30), "/acme/new-order"); n != orders {
		t.Errorf("renew before the CA's time sent %d new orders", n-orders)
	}
}
