package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
	"github.com/ipcert/ipcert/wizard"
)

// holdPort takes addr (the validation port) for the rest of the test, so
// that the responder cannot listen there: a real "port busy" failure. The
// holder is another process (this test binary again, in
// TestHoldPortProcess), as a web server would be: preflight does not count
// ipcert's own sockets.
func holdPort(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldPortProcess$")
	cmd.Env = append(os.Environ(), "IPCERT_TEST_HOLD_PORT="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	// The holder says "listening" once the port is taken (or why not).
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "listening") {
		t.Fatalf("holding %s: %q", addr, line)
	}
}

// TestHoldPortProcess is holdPort's other process: it listens on
// $IPCERT_TEST_HOLD_PORT until its stdin closes.
func TestHoldPortProcess(t *testing.T) {
	addr := os.Getenv("IPCERT_TEST_HOLD_PORT")
	if addr == "" {
		t.Skip("only run by holdPort")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("cannot listen:", err)
		return
	}
	defer l.Close()
	fmt.Println("listening")
	io.Copy(io.Discard, os.Stdin)
}

// firstCert issues 127.0.0.1 from the local CA into dir, so that later
// failures are kept in its renewal.json.
func firstCert(t *testing.T, dir string) {
	t.Helper()
	if code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"); code != exitOK {
		t.Fatalf("first issuance: exit %d\n%s", code, errs)
	}
}

func lastError(t *testing.T, dir string) store.Failure {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.LoadRenewal("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if r.LastError == nil {
		t.Fatal("no failure kept in renewal.json")
	}
	return *r.LastError
}

// TestIssueStoresThePrintedDiagnosis: the failure `ipcert issue` keeps in
// renewal.json is the diagnosis it printed (--json carries the same one).
func TestIssueStoresThePrintedDiagnosis(t *testing.T) {
	dir := t.TempDir()
	firstCert(t, dir)
	busy := "127.0.0.1:" + doctorFreePort(t)
	holdPort(t, busy)
	code, out, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--http-listen", busy, "--json")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, errs)
	}
	var printed struct {
		Diagnosis diagnosis.Diagnosis `json:"diagnosis"`
	}
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	stored := lastError(t, dir)
	want := printed.Diagnosis.Failure(stored.Time)
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("renewal.json keeps\n%+v\nbut issue printed\n%+v", stored, want)
	}
	if stored.Code != diagnosis.DiagPortBusy || !strings.Contains(errs, stored.Cause) {
		t.Errorf("stored %q %q; stderr:\n%s", stored.Code, stored.Cause, errs)
	}
}

// TestWizardStoresTheShownDiagnosis: the failure the wizard keeps in
// renewal.json (Deps.RecordFailure) is the diagnosis its failure screen
// showed, made with the same evidence (here the challenge and its port),
// not a poorer one made from the error alone (which guessed http-01 on
// port 80, and stored a fix command without --challenge tls-alpn-01).
func TestWizardStoresTheShownDiagnosis(t *testing.T) {
	dir := t.TempDir()
	firstCert(t, dir)
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := wizardDeps(wizardWiring{Demo: true, Store: st, Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	// Once the demo's CA is up, another process takes the port it
	// validates tls-alpn-01 on: the responder cannot listen.
	held, tlsPort := false, 0
	pre := deps.Preflight
	deps.Preflight = func(ctx context.Context, req wizard.PreflightRequest, progress func(preflight.Event)) preflight.Report {
		if !held {
			ca, err := deps.OpenCA(cachoice.Local, "")
			if err != nil {
				t.Error(err)
			} else {
				tlsPort = acmeflow.PortOf(ca.TLSListen)
				holdPort(t, ":"+strconv.Itoa(tlsPort))
			}
			held = true
		}
		return pre(ctx, req, progress)
	}
	cfg := wizard.Config{Demo: true, Caps: ui.Caps{Accessible: true, NoColor: true}, StateDir: dir}
	// address, preflight, CA, challenge (tls-alpn-01), key, e-mail, terms;
	// on the failure: quit.
	in := strings.NewReader("1\n1\n1\n2\n\n\ny\n4\n")
	var shown strings.Builder
	_, err = wizard.RunAccessible(context.Background(), deps, cfg, in, &shown)
	if err == nil {
		t.Fatalf("the wizard issued although the port was busy:\n%s", shown.String())
	}
	stored := lastError(t, dir)
	// The screen wraps at 80 columns (at spaces and hyphens): compare
	// without white space.
	// The wizard completes the commands in a fix for this run ("ipcert
	// preflight" gets --ip and --ca): compare them by their verb.
	verbOnly := regexp.MustCompile(`(ipcert [a-z-]+)((?: --[a-z-]+(?: [^ )\n-][^ )\n]*)?)+)`)
	squeeze := func(s string) string { return strings.Join(strings.Fields(verbOnly.ReplaceAllString(s, "$1")), "") }
	screen := squeeze(shown.String())
	if stored.Code != diagnosis.DiagPortBusy {
		t.Fatalf("stored %q, want %q\n%s", stored.Code, diagnosis.DiagPortBusy, shown.String())
	}
	if stored.Challenge != acmeflow.ChallengeTLSALPN01 || stored.Port != tlsPort {
		t.Errorf("stored challenge %q port %d, want %s on %d", stored.Challenge, stored.Port, acmeflow.ChallengeTLSALPN01, tlsPort)
	}
	// The screen joins the fix and its command ("Fix: <fix without its
	// full stop>: <command>", the command completed for this run).
	for _, s := range append([]string{stored.Title, stored.Cause, "Fix: " + strings.TrimRight(stored.Fix, ".") + ":"}, stored.Evidence...) {
		if !strings.Contains(screen, squeeze(s)) {
			t.Errorf("renewal.json keeps %q, which the failure screen did not show:\n%s", s, shown.String())
		}
	}
	// The fix never combines tls-alpn-01 with --webroot: with a running
	// web server's root known (this machine's nginx, if one runs) it is
	// http-01 through that root, else preflight finds the root.
	c := diagnosis.Cmd(stored.CommandArgs)
	_, webroot := c.Flag("--webroot")
	ch, _ := c.Flag("--challenge")
	switch sub, _ := c.Ipcert(); {
	case sub == "preflight" && !webroot:
	case sub == "issue" && webroot && ch == string(acmeflow.ChallengeHTTP01):
	default:
		t.Errorf("stored command %q: want ipcert preflight, or http-01 with --webroot", stored.Command)
	}
}
