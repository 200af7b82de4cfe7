package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
	"github.com/ipcert/ipcert/renew"
)

// renewIssueLocal issues 127.0.0.1 from the local CA into dir with extra
// issue flags and returns the store.
func renewIssueLocal(t *testing.T, dir string, extra ...string) *store.Store {
	t.Helper()
	args := append([]string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"}, extra...)
	if code, _, errs := issueRun(t, nil, args...); code != exitOK {
		t.Fatalf("issue: exit %d: %s", code, errs)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRenewForceLocalCA(t *testing.T) {
	dir := t.TempDir()
	hookOut := filepath.Join(t.TempDir(), "hook.env")
	st := renewIssueLocal(t, dir, "--deploy-hook", "env | grep ^IPCERT_ | sort > "+hookOut)
	v1, err := st.CurrentVersion("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	key1, _ := os.ReadFile(filepath.Join(v1.Dir, store.KeyFile))

	code, out, errs := issueRun(t, nil, "renew", "--force", "--state-dir", dir)
	if code != exitRenewRenewed {
		t.Fatalf("renew --force: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if !strings.Contains(out, "127.0.0.1: renewed, version 2") {
		t.Errorf("stdout: %s", out)
	}
	v2, err := st.CurrentVersion("127.0.0.1")
	if err != nil || v2.N != 2 {
		t.Fatalf("current after renew: %+v %v", v2, err)
	}
	if _, err := st.LoadVersion("127.0.0.1", 1); err != nil {
		t.Errorf("the old version is gone: %v", err)
	}
	key2, _ := os.ReadFile(filepath.Join(v2.Dir, store.KeyFile))
	if bytes.Equal(key1, key2) || v1.Leaf.SerialNumber.Cmp(v2.Leaf.SerialNumber) == 0 {
		t.Error("the renewal kept the key or the serial")
	}
	env, err := os.ReadFile(hookOut)
	if err != nil {
		t.Fatalf("the deploy hook did not run: %v\nstderr: %s", err, errs)
	}
	cur := st.CurrentDir("127.0.0.1")
	for _, want := range []string{
		"IPCERT_NAME=127.0.0.1", "IPCERT_CERT=" + filepath.Join(cur, "cert.pem"), "IPCERT_KEY=" + filepath.Join(cur, "privkey.pem"),
		"IPCERT_FULLCHAIN=" + filepath.Join(cur, "fullchain.pem"), "IPCERT_CHAIN=" + filepath.Join(cur, "chain.pem"),
	} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("hook environment lacks %s:\n%s", want, env)
		}
	}
	r, err := st.LoadRenewal("127.0.0.1")
	if err != nil || r.Current != 2 || r.LastError != nil || r.RenewAt.IsZero() || len(r.DeployHooks) != 1 || r.CA != "local" {
		t.Fatalf("renewal.json after renew: %+v %v", r, err)
	}

	// Now nothing is due: exit 0, and the last run is recorded.
	code, out, errs = issueRun(t, nil, "renew", "--state-dir", dir)
	if code != exitRenewNothing || !strings.Contains(out, "not due") {
		t.Fatalf("second renew: exit %d\n%s\n%s", code, out, errs)
	}
	var lr renew.LastRun
	data, err := os.ReadFile(filepath.Join(dir, renew.LastRunFile))
	if err != nil || json.Unmarshal(data, &lr) != nil || lr.ExitCode != 0 || lr.Checked != 1 || lr.NotDue != 1 || len(lr.Result.Certs) != 0 {
		t.Fatalf("renew-last.json: %v %s", err, data)
	}
}

// A run with nothing due must not touch the network: the CA in
// renewal.json is a port where nothing listens, and the ARI state is fresh.
func TestRenewNothingDueIsOffline(t *testing.T) {
	dir := t.TempDir()
	st := renewIssueLocal(t, dir)
	r, err := st.LoadRenewal("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	r.CA, r.Directory = "http://127.0.0.1:9/dir", "http://127.0.0.1:9/dir"
	r.ARI = &store.ARIState{WindowStart: now.Add(70 * time.Hour), WindowEnd: now.Add(72 * time.Hour), CheckedAt: now, NextCheck: now.Add(6 * time.Hour)}
	r.RenewAt = now.Add(71 * time.Hour)
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out, errs := issueRun(t, nil, "renew", "--state-dir", dir, "--json")
	took := time.Since(start)
	if code != exitRenewNothing || errs != "" {
		t.Fatalf("exit %d, stderr: %s", code, errs)
	}
	var res renew.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Network || len(res.Certs) != 1 || res.Certs[0].Outcome != renew.NotDue {
		t.Fatalf("result: %v %s", err, out)
	}
	if !res.Certs[0].Next.Equal(r.ARI.NextCheck) {
		t.Errorf("next action %s, want the ARI re-check at %s", res.Certs[0].Next, r.ARI.NextCheck)
	}
	t.Logf("no-op run took %s in-process", took)
}

func TestRenewFailureIsRecordedAndBacksOff(t *testing.T) {
	dir := t.TempDir()
	st := renewIssueLocal(t, dir)
	r, _ := st.LoadRenewal("127.0.0.1")
	// The CA validates 127.0.0.2, where our responder (on 127.0.0.1) does
	// not listen: the validation fails with a connection error.
	r.Identifiers = []string{"127.0.0.2"}
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	code, out, errs := issueRun(t, nil, "renew", "--force", "--state-dir", dir)
	if code != exitFailure || !strings.Contains(out, "FAILED") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	r, _ = st.LoadRenewal("127.0.0.1")
	if r.Failures != 1 || r.LastError == nil || r.LastError.Step == "" || r.LastError.Code == "" || r.LastError.Cause == "" || r.NextAttempt.Before(before.Add(time.Minute)) || r.NextAttempt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("failure record: failures=%d next=%s err=%+v", r.Failures, r.NextAttempt, r.LastError)
	}
	if v, err := st.CurrentVersion("127.0.0.1"); err != nil || v.N != 1 {
		t.Fatalf("a failed renewal touched current: %+v %v", v, err)
	}
	// Inside the backoff: nothing to do, offline.
	code, out, _ = issueRun(t, nil, "renew", "--state-dir", dir)
	if code != exitRenewNothing || !strings.Contains(out, "backing off") {
		t.Fatalf("inside the backoff: exit %d: %s", code, out)
	}
}

func TestRenewDryRunLeavesStore(t *testing.T) {
	dir := t.TempDir()
	st := renewIssueLocal(t, dir)
	before, _ := os.ReadFile(filepath.Join(st.CertDir("127.0.0.1"), "renewal.json"))
	code, out, errs := issueRun(t, nil, "renew", "--dry-run", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "dry run OK") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	after, _ := os.ReadFile(filepath.Join(st.CertDir("127.0.0.1"), "renewal.json"))
	if !bytes.Equal(before, after) {
		t.Error("--dry-run changed renewal.json")
	}
	if ns, _ := st.Versions("127.0.0.1"); len(ns) != 1 {
		t.Errorf("--dry-run stored a version: %v", ns)
	}
	if _, err := os.Stat(filepath.Join(dir, renew.LastRunFile)); err == nil {
		t.Error("--dry-run wrote renew-last.json")
	}
}

func TestRenewUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"renew", "--state-dir", dir, "nosuch"},
		{"renew", "--state-dir", dir, "--force", "--dry-run"},
		{"renew", "--state-dir", dir, "../x"},
	} {
		if code, _, errs := issueRun(t, nil, args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if code, out, _ := issueRun(t, nil, "renew", "--state-dir", dir); code != exitRenewNothing || !strings.Contains(out, "No managed certificates") {
		t.Errorf("empty store: %d %s", code, out)
	}
}

// renewBuild builds the ipcert binary for the subprocess tests.
func renewBuild(t *testing.T) string {
	t.Helper()
	return testkit.Binary(t)
}

// TestRenewConcurrent: two runs of the built binary at once. (The kill
// tests are in reliability/crash_test.go.)
func TestRenewConcurrent(t *testing.T) {
	renewConcurrent(t, renewBuild(t))
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// Two renew runs at once: the second waits for the lock (and renews after
// the first) or, with --wait 0, skips with exit 4; nothing is corrupted.
func renewConcurrent(t *testing.T, bin string) {
	dir := t.TempDir()
	mark := filepath.Join(t.TempDir(), "in-hook")
	// The hook holds the first run inside its lock for a while.
	st := renewIssueLocal(t, dir, "--deploy-hook", "touch "+mark+"; sleep 1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := exec.CommandContext(ctx, bin, "renew", "--force", "--state-dir", dir)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first run never reached its hook:\n%s", firstOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	skip, err := exec.CommandContext(ctx, bin, "renew", "--force", "--wait", "0s", "--state-dir", dir).CombinedOutput()
	if code := exitCodeOf(err); code != exitLocked || !strings.Contains(string(skip), "skipped") {
		t.Fatalf("--wait 0 while locked: exit %d\n%s", code, skip)
	}
	waited, err := exec.CommandContext(ctx, bin, "renew", "--force", "--wait", "30s", "--state-dir", dir).CombinedOutput()
	if code := exitCodeOf(err); code != exitRenewRenewed {
		t.Fatalf("--wait 30s while locked: exit %d\n%s", code, waited)
	}
	if err := first.Wait(); exitCodeOf(err) != exitRenewRenewed {
		t.Fatalf("first run: %v\n%s", err, firstOut.String())
	}
	v, err := st.CurrentVersion("127.0.0.1")
	r, rerr := st.LoadRenewal("127.0.0.1")
	if err != nil || rerr != nil || v.N != 3 || r.Current != 3 {
		t.Fatalf("after two renewals: current %+v (%v), renewal.json %+v (%v)", v, err, r, rerr)
	}
}

// TestRenewLastRunOnlyWhenChanged: renew-last.json is rewritten only when
// a run did or found something new (it was 1.24 MB rewritten every hour
// at 5,000 certificates); an unchanged no-op run only sets its time.
func TestRenewLastRunOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	renewIssueLocal(t, dir)
	path := filepath.Join(dir, renew.LastRunFile)
	if code, _, errs := issueRun(t, nil, "renew", "--state-dir", dir); code != exitRenewNothing {
		t.Fatalf("exit %d: %s", code, errs)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	if code, _, errs := issueRun(t, nil, "renew", "--state-dir", dir); code != exitRenewNothing {
		t.Fatalf("exit %d: %s", code, errs)
	}
	second, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if !bytes.Equal(first, second) {
		t.Errorf("an unchanged no-op run rewrote renew-last.json:\n%s\n%s", first, second)
	}
	if !fi.ModTime().After(old.Add(30 * time.Minute)) {
		t.Errorf("the no-op run did not record its time (mtime %s)", fi.ModTime())
	}
}
