package diagnosis

import (
	"fmt"
	"io"
	"strings"
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
// go next: doctor, unless the fix already is doctor.
func WriteFailure(w io.Writer, d Diagnosis) {
	Write(w, d)
	switch {
	case strings.HasPrefix(d.Command, "ipcert doctor"):
	case d.ownCA:
		fmt.Fprintln(w, "Run \"ipcert doctor\" to re-check this later, or \"ipcert doctor NAME --probe\" for a real test from your CA.")
	default:
		fmt.Fprintln(w, "Run \"ipcert doctor\" to re-check this later, or \"ipcert doctor ADDR --probe\" for a real test from Let's Encrypt staging.")
	}
}
