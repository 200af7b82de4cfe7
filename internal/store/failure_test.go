package store

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFirstFailures(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	name := NameFor([]string{"::1", "127.0.0.1"})
	if got := IdentifiersOfName(name); !reflect.DeepEqual(got, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IdentifiersOfName(%q) = %v", name, got)
	}
	f := Failure{Time: time.Unix(1e9, 0).UTC(), Step: "account", Detail: "terms not agreed", Code: "terms-not-agreed"}
	if err := st.SaveFirstFailure(name, f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(st.failurePath(name))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("failure file: %v %v", fi, err)
	}
	ffs, err := st.FirstFailures()
	if err != nil || len(ffs) != 1 || ffs[0].Name != name || ffs[0].LastError.Code != "terms-not-agreed" || len(ffs[0].Identifiers) != 2 {
		t.Fatalf("FirstFailures = %+v, %v", ffs, err)
	}
	if err := st.SaveFirstFailure("../x", f); err == nil {
		t.Error("a name with a path in it was accepted")
	}
	if err := st.ClearFirstFailure(name); err != nil {
		t.Fatal(err)
	}
	if ffs, _ := st.FirstFailures(); len(ffs) != 0 {
		t.Errorf("after Clear: %+v", ffs)
	}
}

// A failure record larger than any ipcert writes now (an older version kept
// every validator request: 507 MB) is not read; the others still are.
func TestFirstFailuresSkipsOversizeRecord(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFirstFailure("203.0.113.7", Failure{Step: "challenge", Detail: "small"}); err != nil {
		t.Fatal(err)
	}
	big := s.failurePath("203.0.113.8")
	if err := os.WriteFile(big, append([]byte(`{"name":"203.0.113.8","last_error":{"detail":"`), make([]byte, MaxFailureRecord)...), 0o600); err != nil {
		t.Fatal(err)
	}
	ffs, err := s.FirstFailures()
	if len(ffs) != 1 || ffs[0].Name != "203.0.113.7" {
		t.Fatalf("records %+v", ffs)
	}
	if err == nil || !strings.Contains(err.Error(), "rm "+big) {
		t.Fatalf("error %v, want one naming the fix rm %s", err, big)
	}
}
