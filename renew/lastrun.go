package renew

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// LastRunFile is where every renew run leaves its outcome, for `ipcert
// timer status` (which has no journal to read under cron).
const LastRunFile = "renew-last.json"

// LastRun is renew-last.json: the last run that did or found something.
// Certificates that were not due are only counted, so the file stays
// small at thousands of certificates.
type LastRun struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	ExitCode int           `json:"exit_code"`
	Error    string        `json:"error,omitempty"`
	Checked  int           `json:"checked"`
	NotDue   int           `json:"not_due"`
	Result   *Result       `json:"result,omitempty"`
	// LastChecked is the last run at all (the file's modification time):
	// a run that changes nothing only touches the file.
	LastChecked time.Time `json:"-"`
}

func (lr *LastRun) certs() []CertResult {
	if lr.Result == nil {
		return nil
	}
	return lr.Result.Certs
}

// SaveLastRun records the run in renew-last.json. A run that found nothing
// due and ended like the recorded one only sets the file's time (one
// system call, no write: the hourly no-op stays in milliseconds);
// otherwise the file is replaced atomically.
func SaveLastRun(st *store.Store, lr LastRun) {
	path := filepath.Join(st.Root(), LastRunFile)
	if lr.Result != nil {
		short := &Result{Network: lr.Result.Network}
		lr.Checked += lr.Result.NotDueOmitted
		lr.NotDue += lr.Result.NotDueOmitted
		for _, c := range lr.Result.Certs {
			lr.Checked++
			if c.Outcome == NotDue {
				lr.NotDue++
				continue
			}
			short.Certs = append(short.Certs, c)
		}
		lr.Result = short
	}
	if len(lr.certs()) == 0 && lr.Error == "" {
		// Only what the comparison needs is decoded (the certificates
		// left raw): this is every hourly run's last step.
		var prev struct {
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
			Checked  int    `json:"checked"`
			Result   *struct {
				Certs []json.RawMessage `json:"certificates"`
			} `json:"result"`
		}
		data, err := st.ReadState(LastRunFile)
		if err == nil && json.Unmarshal(data, &prev) == nil && prev.ExitCode == lr.ExitCode && prev.Error == "" &&
			(prev.Result == nil || len(prev.Result.Certs) == 0) && prev.Checked == lr.Checked {
			now := time.Now()
			if os.Chtimes(path, now, now) == nil {
				return
			}
		}
	}
	data, err := json.MarshalIndent(lr, "", "  ")
	if err != nil {
		return
	}
	_ = st.WriteState(LastRunFile, data)
}

// LoadLastRun reads renew-last.json, with LastChecked from its time.
func LoadLastRun(st *store.Store) (*LastRun, error) {
	path := filepath.Join(st.Root(), LastRunFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lr LastRun
	if err := json.Unmarshal(data, &lr); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		lr.LastChecked = fi.ModTime()
	}
	return &lr, nil
}
