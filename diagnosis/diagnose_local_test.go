package diagnosis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// Local failures get their own fix text: before, a full disk, a failed
// rename and a JWS refusal all ended in "Check the address, ports and
// firewall" (issue 12).
func notNetworkAdvice(t *testing.T, d Diagnosis) {
	t.Helper()
	if strings.Contains(d.Fix, "firewall") || strings.Contains(d.Fix, "ports") {
		t.Errorf("%s: the fix talks about the network: %s", d.Code, d.Fix)
	}
}

func TestDiagnoseFailedRename(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	first, err := e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	// "current" turned into a real, non-empty directory (a hand-made
	// copy): renaming the new link over it fails.
	cur := e.Store.CurrentDir("r")
	os.Remove(cur)
	os.MkdirAll(filepath.Join(cur, "keep"), 0o700)
	_, err = e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "r"})
	if err == nil {
		t.Fatal("issued over a directory named current")
	}
	d := Diagnose(err, Evidence{})
	checkDiag(t, d, diagWant{code: DiagStoreRename, cause: []string{"rename", "current"}, fix: []string{"ls -la", "not touched"}})
	notNetworkAdvice(t, d)
	_ = first
}

func TestDiagnoseJWSRejected(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	if _, err := e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "j"}); err != nil {
		t.Fatal(err)
	}
	// Another key under the same account URL: the CA cannot verify the
	// signature of the next request.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	matches, _ := filepath.Glob(filepath.Join(e.Store.Root(), "accounts", "*", "*", "key.pem"))
	if len(matches) != 1 {
		t.Fatalf("account keys: %v", matches)
	}
	os.WriteFile(matches[0], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	_, err := e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "j"})
	if err == nil {
		t.Fatal("the CA accepted a request signed with another key")
	}
	d := Diagnose(err, Evidence{})
	t.Logf("diagnosis %s: %s", d.Code, d.Cause)
	if d.Code == DiagAccount {
		// Pebble reports an unknown key as an account problem: that has
		// its own, right advice too.
		notNetworkAdvice(t, d)
		return
	}
	checkDiag(t, d, diagWant{code: DiagJWS, cause: []string{"signed", "account key"}, fix: []string{"account folder aside"}})
	notNetworkAdvice(t, d)
}

func TestDiagnoseDiskFull(t *testing.T) {
	testkit.NeedRoot(t, "mounting a small tmpfs")
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", dir).CombinedOutput()
	testkit.Need(t, err == nil, fmt.Sprintf("cannot mount a tmpfs here: %v %s", err, out))
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &acmeflow.Engine{Store: st}
	ca := startCA(t, localca.Options{})
	idents := mustAddrs("127.0.0.1")
	if _, err := e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "f"}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "filler"))
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	_, err = e.Issue(context.Background(), ca.request(idents, acmeflow.ChallengeHTTP01), acmeflow.IssueOptions{Name: "f"})
	if err == nil {
		t.Fatal("issued on a full disk")
	}
	d := Diagnose(err, Evidence{})
	checkDiag(t, d, diagWant{code: DiagDiskFull, cause: []string{"no space left"}, fix: []string{"df -h", "not touched"}})
	notNetworkAdvice(t, d)
}
