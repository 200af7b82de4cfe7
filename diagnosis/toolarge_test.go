package diagnosis

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/netlimit"
)

// A CA answer past the engine's cap (issue 22) is its own diagnosis, not
// the generic transport failure.
func TestDiagnoseCATooLarge(t *testing.T) {
	tl := &netlimit.TooLargeError{Peer: "the CA at 127.0.0.1:14000", What: "response", Limit: acmeflow.MaxCAResponse}
	err := &acmeflow.Error{Step: acmeflow.StepDirectory, Err: fmt.Errorf("get directory at 'https://127.0.0.1:14000/dir': %w", tl)}
	d := Diagnose(err, Evidence{CA: "https://127.0.0.1:14000/dir"})
	if d.Code != DiagCATooLarge || !strings.Contains(d.Cause, "1 MiB") || !strings.Contains(d.Cause, "127.0.0.1:14000") || d.Retryable {
		t.Fatalf("got %s: %s / %s", d.Code, d.Cause, d.Fix)
	}
}
