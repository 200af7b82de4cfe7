package boulderca

import (
	"strings"
	"testing"
)

// TestBoulderRateLimit: Boulder allows an identical set of addresses three
// certificates in three hours here (internal/boulder's limits); the fourth
// order is refused with 429, rateLimited and a Retry-After. ipcert says
// it is a rate limit and when to try again, and keeps the working
// certificate.
func TestBoulderRateLimit(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	ip := v4(25).String()
	for i := 0; i < 3; i++ {
		mustIssue(t, s, state, "--ip", ip, "--name", "limited")
	}
	out, errs, code := ipcert(t, s, append([]string{"issue", "--ip", ip, "--name", "limited"}, caArgs(s, state)...)...)
	said := strings.Join(strings.Fields(errs+out), " ")
	t.Logf("fourth issuance: exit %d\n%s", code, errs+out)
	if code != 1 {
		t.Fatalf("fourth issuance for one address in 3 hours: exit %d, want 1", code)
	}
	for _, want := range []string{"rate limit", "retry after"} {
		if !strings.Contains(strings.ToLower(said), want) {
			t.Errorf("the message does not say %q", want)
		}
	}
	checkShape(t, s, state, "limited", nil2(v4(25)))
}
