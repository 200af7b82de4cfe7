package wizard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/testkit"
)

// TestAccessibleToCertificate answers the plain prompts from a reader, as
// a screen reader user types them, and ends with a certificate on disk.
func TestAccessibleToCertificate(t *testing.T) {
	deps, _, _ := localDeps(t, cachoice.Options{})
	answers := strings.Join([]string{
		"1",   // use 127.0.0.1
		"1",   // preflight: go on
		"1",   // CA: the local test CA
		"2",   // challenge: tls-alpn-01
		"",    // key type: the default
		"",    // no e-mail
		"yes", // terms
		"1",   // install: continue (nothing wired)
		"1",   // renewal: continue
		"1",   // verify: continue
	}, "\n") + "\n"
	var out bytes.Buffer
	o, err := RunAccessible(context.Background(), deps, testConfig(true), strings.NewReader(answers), &out)
	text := ansi.Strip(out.String())
	if err != nil {
		t.Fatalf("RunAccessible: %v\n%s", err, text)
	}
	checkIssued(t, o, "127.0.0.1")
	if o.Issued.Renewal.Challenge != "tls-alpn-01" {
		t.Errorf("challenge %q, want tls-alpn-01 (answer 2)", o.Issued.Renewal.Challenge)
	}
	for _, want := range []string{
		"Step 2 of 9, Address", "Enter a number between 1 and 2",
		"Step 3 of 9, Preflight", "Verdict: everything checked looks right",
		"dns-01 is impossible", "Step 5 of 9, Issue", "validator 127.0.0.1",
		"openssl verify -CAfile root.pem",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("accessible output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("accessible output carries escape sequences:\n%q", out.String())
	}
}

// TestAccessibleInputEnds: when the input ends mid-way the wizard stops
// with ErrInputClosed instead of looping on empty answers.
func TestAccessibleInputEnds(t *testing.T) {
	var out bytes.Buffer
	o, err := RunAccessible(context.Background(), demoFakeDeps(), testConfig(true), strings.NewReader("1\n"), &out)
	if !errors.Is(err, ErrInputClosed) {
		t.Fatalf("err = %v, want ErrInputClosed\n%s", err, out.String())
	}
	if !o.Aborted || o.Issued != nil {
		t.Errorf("outcome %+v", o)
	}
}

// TestAccessibleTypedAddressRefused: a refused address is explained and
// asked again.
func TestAccessibleTypedAddressRefused(t *testing.T) {
	var out bytes.Buffer
	in := "4\n0.0.0.0\n81.2.69.162\n5\n" // type an address; refused; accepted; preflight: quit
	_, err := RunAccessible(context.Background(), fakeDeps(nil), testConfig(false), strings.NewReader(in), &out)
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("err = %v, want ErrAborted (quit at preflight)\n%s", err, out.String())
	}
	text := ansi.Strip(out.String())
	for _, want := range []string{"refused: is the unspecified address", "Address: 81.2.69.162", "Ports 80 and 443: FAIL"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// TestAccessibleInterrupt: an interrupt while a question waits for an
// answer ends the wizard at once (a terminal read cannot be cancelled).
func TestAccessibleInterrupt(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out testkit.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := RunAccessible(ctx, demoFakeDeps(), testConfig(true), r, &out)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Enter a number") {
		if time.Now().After(deadline) {
			t.Fatalf("no question asked:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrAborted) {
			t.Errorf("err = %v, want ErrAborted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunAccessible did not return after the interrupt")
	}
}

// TestAccessibleDiagnosisUsesPreflight: the accessible wizard explains a
// failure with the same local evidence as the full-screen one (here the
// preflight's home NAT), because both keep the report in the same place.
func TestAccessibleDiagnosisUsesPreflight(t *testing.T) {
	iss := &scriptedIssuer{release: make(chan struct{})}
	close(iss.release)
	var out bytes.Buffer
	// address pub4, preflight: go, CA: staging only, challenge: http-01,
	// key, e-mail, terms; then the failure: quit.
	in := "1\n1\n2\n1\n\n\ny\n4\n"
	_, err := RunAccessible(context.Background(), fakeDeps(iss), testConfig(false), strings.NewReader(in), &out)
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if text := ansi.Strip(out.String()); !strings.Contains(text, "behind a NAT router") {
		t.Errorf("the diagnosis lacks the preflight's NAT finding:\n%s", text)
	}
}

// TestAccessibleAnswersSaid (issue 24 item 12): " 1" is the answer 1; an
// empty answer takes the default, which the question names and the
// answer repeats; a typed address does not run into the next line;
// with the outcome on stdout the summary is said once.
func TestAccessibleAnswersSaid(t *testing.T) {
	deps, _, _ := localDeps(t, cachoice.Options{})
	answers := strings.Join([]string{
		"2",             // type an address
		"127.0.0.1",     // it
		" 1 ",           // preflight: go on
		"1", "", "", "", // CA, challenge, key, e-mail
		"yes",
		"", "", "", // install, renewal, verify: the default (continue)
	}, "\n") + "\n"
	cfg := testConfig(true)
	cfg.SummaryOnStdout = true
	var out bytes.Buffer
	o, err := RunAccessible(context.Background(), deps, cfg, strings.NewReader(answers), &out)
	text := ansi.Strip(out.String())
	if err != nil {
		t.Fatalf("RunAccessible: %v\n%s", err, text)
	}
	checkIssued(t, o, "127.0.0.1")
	for _, want := range []string{"What now? (Enter alone: 1)", "Chosen: 1. Continue", "\nAddress: 127.0.0.1", "Step 9 of 9, Summary: it follows."} {
		if !strings.Contains(text, want) {
			t.Errorf("accessible output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Address: Address:") || strings.Contains(text, "Invalid: must be") {
		t.Errorf("a doubled prompt or a refused answer:\n%s", text)
	}
}
