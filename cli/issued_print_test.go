package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/wizard"
)

// TestIssuedPrintedOnce: issue and the wizard's outcome print the same
// block for the same certificate (they were two copies, and the wizard's
// had drifted: an extra "cert, chain" line issue never printed).
func TestIssuedPrintedOnce(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nb := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	iss := &acmeflow.Issued{Name: "203.0.113.7", Version: store.Version{N: 3},
		Renewal: &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"203.0.113.7"}, CA: cachoice.Staging}, Name: "203.0.113.7", NotBefore: nb, NotAfter: nb.Add(160 * time.Hour)}}
	var fromIssue, fromWizard bytes.Buffer
	printIssued(&fromIssue, iss, st, &cachoice.CA{Choice: cachoice.Staging})
	wizardPrintOutcome(&fromWizard, wizard.Outcome{Issued: iss, Files: store.PathsIn(st.CurrentDir(iss.Name), false)}, false, st.Root())
	block := func(s string) string {
		s = strings.TrimLeft(s, "\n")
		if i := strings.Index(s, "\n\n"); i >= 0 {
			s = s[:i]
		}
		return s
	}
	a, b := block(fromIssue.String()), block(fromWizard.String())
	if a != b {
		t.Fatalf("issue prints\n%s\nthe wizard prints\n%s", a, b)
	}
	for _, want := range []string{"Issued a certificate for 203.0.113.7 (version 3", "  key         " + st.CurrentDir(iss.Name)} {
		if !strings.Contains(a, want) {
			t.Errorf("block lacks %q:\n%s", want, a)
		}
	}
}
