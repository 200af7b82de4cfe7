package diagnosis

import (
	"fmt"
	"io"

	"github.com/ipcert/ipcert/acmeflow"
)

// Write writes a diagnosis for people: what, why, the evidence, the fix
// and the command, and when to retry.
func Write(w io.Writer, d Diagnosis) {
	where := ""
	if d.Step != "" {
		where = fmt.Sprintf(" (at the %s step", d.Step)
		if d.Identifier != "" {
			where += ", " + d.Identifier
		}
		where += ")"
	}
	fmt.Fprintf(w, "\nDiagnosis: %s%s [%s]\n", d.Title, where, d.Code)
	if d.Problem != nil {
		fmt.Fprintf(w, "  CA said:  %s\n", d.Problem.String())
	} else if d.Error != "" {
		fmt.Fprintf(w, "  error:    %s\n", d.Error)
	}
	fmt.Fprintf(w, "  cause:    %s\n", d.Cause)
	for i, e := range d.Evidence {
		label := "evidence: "
		if i > 0 {
			label = "          "
		}
		fmt.Fprintf(w, "  %s%s\n", label, e)
	}
	fmt.Fprintf(w, "  fix:      %s\n", d.Fix)
	if d.Command != "" {
		fmt.Fprintf(w, "  command:  %s\n", d.Command)
	}
	retry := "no: " + d.Retry
	if d.Retryable {
		retry = "yes, " + d.Retry
	}
	fmt.Fprintf(w, "  retry:    %s\n", retry)
}

// WriteFailure writes the diagnosis of a failed run (issue) and where to
// go next: doctor, unless the fix already is doctor, or, when the failure
// could not be recorded (recordErr: a full disk, a read-only state
// directory), that doctor will not know it.
func WriteFailure(w io.Writer, d Diagnosis, recordErr error) {
	Write(w, d)
	if recordErr != nil {
		fmt.Fprintf(w, "This failure could not be recorded (%s), so ipcert doctor will not know it: the diagnosis above is the whole explanation.\n", acmeflow.Printable(recordErr.Error()))
		return
	}
	if sub, ok := d.Args.Ipcert(); ok && sub == "doctor" {
		return
	}
	again, probe := doctorCmd(d.addr, d.stateDir, false), doctorCmd(d.addr, d.stateDir, true)
	from := "Let's Encrypt staging"
	if d.ownCA {
		from = "your CA"
	}
	if d.addr == "" {
		fmt.Fprintf(w, "Run \"%s\" to re-check this later.\n", again)
		return
	}
	fmt.Fprintf(w, "Run \"%s\" to re-check this later, or \"%s\" for a real test from %s.\n", again, probe, from)
}
