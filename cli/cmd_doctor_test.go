package cli

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/diagnosis"
)

func doctorFreePort(t *testing.T) string {
	t.Helper()
	p, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

type doctorJSON struct {
	OK      bool `json:"ok"`
	Targets []struct {
		Name      string `json:"name"`
		LastError *struct {
			Code, Challenge, Webroot string
			Port                     int
		} `json:"last_error"`
		Stored    *diagnosis.Diagnosis `json:"stored_diagnosis"`
		Diagnosis *diagnosis.Diagnosis `json:"diagnosis"`
		Probes    []diagnosis.Probe    `json:"local_probes"`
		Order     *struct {
			CA         string                      `json:"ca"`
			OK         bool                        `json:"ok"`
			Validators []acmeflow.ValidatorRequest `json:"validators"`
			Diagnosis  *diagnosis.Diagnosis        `json:"diagnosis"`
		} `json:"probe_order"`
	} `json:"targets"`
}

func doctorJSONOut(t *testing.T, out string) doctorJSON {
	t.Helper()
	var r doctorJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	return r
}

func TestDoctorNothingStored(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := issueRun(t, nil, "doctor", "--state-dir", dir, "--offline")
	if code != exitOK || !strings.Contains(out, "No failures stored") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = issueRun(t, nil, "doctor", "--state-dir", dir, "--offline", "--json")
	if r := doctorJSONOut(t, out); code != exitOK || !r.OK || len(r.Targets) != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestDoctorExplainsStoredFailure: a real failed issuance (the web server
// behind --webroot is down) is diagnosed by issue, kept in renewal.json,
// and explained again by doctor with a fresh local probe of the port.
func TestDoctorExplainsStoredFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"); code != exitOK {
		t.Fatalf("first issue: %d %s", code, errs)
	}
	closed := doctorFreePort(t)
	code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos",
		"--webroot", t.TempDir(), "--webroot-port", closed)
	if code != exitFailure {
		t.Fatalf("failing issue exited %d: %s", code, errs)
	}
	for _, want := range []string{"Diagnosis: Nothing accepted the connection", "[connect-refused]", "nothing listens on port " + closed, "fix:", "retry:    no"} {
		if !strings.Contains(errs, want) {
			t.Errorf("issue's stderr lacks %q:\n%s", want, errs)
		}
	}

	code, out, errs := issueRun(t, nil, "doctor", "--state-dir", dir, "--offline")
	if code != exitFailure {
		t.Fatalf("doctor exited %d: %s\n%s", code, out, errs)
	}
	for _, want := range []string{`Certificate "127.0.0.1"`, "At the time:", "[connect-refused]", "Checks now:", "[probe] 127.0.0.1:" + closed + ": connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor's output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = issueRun(t, nil, "doctor", "127.0.0.1", "--state-dir", dir, "--offline", "--json")
	r := doctorJSONOut(t, out)
	if code != exitFailure || r.OK || len(r.Targets) != 1 {
		t.Fatalf("exit %d: %s", code, out)
	}
	tg := r.Targets[0]
	if tg.LastError == nil || tg.LastError.Code != diagnosis.DiagConnectRefused || tg.LastError.Port != mustAtoi(t, closed) || tg.LastError.Webroot == "" {
		t.Errorf("stored failure: %+v", tg.LastError)
	}
	if tg.Diagnosis == nil || tg.Diagnosis.Code != diagnosis.DiagConnectRefused || !strings.Contains(tg.Diagnosis.Fix, "Start the web server that serves") {
		t.Errorf("fresh diagnosis: %+v", tg.Diagnosis)
	}
	if len(tg.Probes) != 1 || tg.Probes[0].Kind != diagnosis.ProbeRefused {
		t.Errorf("probes: %+v", tg.Probes)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDoctorProbe: --probe makes a real order (on the local test CA here,
// staging in real life) and reports every validator request it saw.
func TestDoctorProbe(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"IPCERT_DOCTOR_PROBE_CA": "local"}
	code, out, errs := issueRun(t, env, "doctor", "127.0.0.1", "--probe", "--agree-tos", "--offline", "--state-dir", dir, "--json")
	r := doctorJSONOut(t, out)
	if code != exitOK || len(r.Targets) != 1 || r.Targets[0].Order == nil {
		t.Fatalf("exit %d: %s\n%s", code, out, errs)
	}
	o := r.Targets[0].Order
	if !o.OK || o.CA != "local" || len(o.Validators) == 0 {
		t.Fatalf("probe order: %+v", o)
	}
	for _, v := range o.Validators {
		if !strings.HasPrefix(v.Remote, "127.0.0.1:") || !v.Answered || v.Status != 200 {
			t.Errorf("validator request %+v", v)
		}
	}
	if !strings.Contains(errs, "validator 127.0.0.1:") {
		t.Errorf("stderr does not show the validator requests live:\n%s", errs)
	}

	// The human form lists the requests with their time and source.
	code, out, _ = issueRun(t, env, "doctor", "127.0.0.1", "--probe", "--agree-tos", "--offline", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "validation SUCCEEDED") || !strings.Contains(out, "validator request(s) reached our responder") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestDoctorProbeFailure: the probe's validation fails for real (the web
// server behind --webroot is down) and doctor diagnoses it.
func TestDoctorProbeFailure(t *testing.T) {
	env := map[string]string{"IPCERT_DOCTOR_PROBE_CA": "local"}
	closed := doctorFreePort(t)
	code, out, errs := issueRun(t, env, "doctor", "127.0.0.1", "--probe", "--agree-tos", "--offline", "--state-dir", t.TempDir(),
		"--webroot", t.TempDir(), "--http-listen", "127.0.0.1:"+closed)
	if code != exitFailure {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"validation FAILED", "none can be seen, your web server answered", "[connect-refused]", "nothing listens on port " + closed} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDoctorUsage(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := issueRun(t, map[string]string{"IPCERT_DOCTOR_PROBE_CA": "production"}, "doctor", "203.0.113.7", "--probe", "--state-dir", dir)
	if code != exitUsage || !strings.Contains(errs, "only against staging") {
		t.Errorf("probe against production: exit %d %s", code, errs)
	}
	code, _, errs = issueRun(t, nil, "doctor", "no-such-cert", "--state-dir", dir, "--offline")
	if code != exitUsage || !strings.Contains(errs, "neither a certificate") {
		t.Errorf("unknown name: exit %d %s", code, errs)
	}
	code, _, errs = issueRun(t, nil, "doctor", "--probe", "--state-dir", dir, "--offline")
	if code != exitUsage || !strings.Contains(errs, "needs an address") {
		t.Errorf("--probe without target: exit %d %s", code, errs)
	}
	code, _, errs = issueRun(t, nil, "doctor", "1.2.3.4", "5.6.7.8", "--state-dir", dir)
	if code != exitUsage {
		t.Errorf("two targets: exit %d %s", code, errs)
	}
}

func TestDoctorTakesOneNameAfterFlags(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := issueRun(t, nil, "doctor", "--state-dir", dir, "--offline", "nosuchcert")
	if strings.Contains(errs, "at most") {
		t.Fatalf("one name refused: %d %s", code, errs)
	}
	if code, _, errs := issueRun(t, nil, "doctor", "--state-dir", dir, "a", "b"); code != exitUsage || !strings.Contains(errs, "at most") {
		t.Fatalf("two names: %d %s", code, errs)
	}
}

// TestDoctorOfflineSendsNothing: --offline probes the validation port
// only on addresses of this machine (issue 24 item 13): an address that
// is not on a local interface would be reached over the network.
func TestDoctorOfflineSendsNothing(t *testing.T) {
	dir := t.TempDir()
	_, out, _ := issueRun(t, nil, "doctor", "192.0.2.1", "--offline", "--state-dir", dir, "--json")
	r := doctorJSONOut(t, out)
	if len(r.Targets) != 1 || len(r.Targets[0].Probes) != 0 {
		t.Errorf("doctor --offline probed an address off this machine: %s", out)
	}
	for _, id := range []string{`"nat"`, `"public-ipv4"`, `"public-ipv6"`, `"self-fetch"`} {
		if strings.Contains(out, `"id": `+id) {
			t.Errorf("doctor --offline ran the network check %s", id)
		}
	}
	_, out, _ = issueRun(t, nil, "doctor", "127.0.0.1", "--offline", "--state-dir", dir, "--json")
	if r := doctorJSONOut(t, out); len(r.Targets) != 1 || len(r.Targets[0].Probes) != 1 {
		t.Errorf("doctor --offline did not probe loopback: %s", out)
	}
}
