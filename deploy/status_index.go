package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipcert/ipcert/internal/store"
)

// The status index, <state>/status-index, keeps what `ipcert status`
// shows of each certificate, so that status at thousands of certificates
// parses no renewal.json and no certificate that did not change: it was
// 170 µs a certificate, 1.7 s at 10,000. It is status's own cache, checked
// entry by entry, never trusted blindly:
//
//   - Each entry carries the identity of its folder certs/<name> and of its
//     renewal.json as status read them (inode, mtime and ctime, taken
//     before the files were read).
//     Every write of the store renames inside that folder (renewal.json's
//     temp file, the current link's swap), and so does deleting either by
//     hand: a different stamp, and the certificate is read again. A folder
//     changed less than racyWindow before status started is not cached
//     (its timestamps come from a coarse clock, so a change in the same
//     tick as status's look would keep the stamp: git's "racy" rule).
//   - The next renewal is cached only until renew's plan can answer
//     otherwise (renew.NextUntil); the time left and "expired" are worked
//     out at every call from the certificate's own notAfter.
//   - Certificates with a problem are never cached (status is what people
//     run when something is wrong), nor is anything with --verify-keys,
//     which reads every key.
//   - The file is written whole (temp file, rename) with a CRC of its body;
//     a torn, foreign or unreadable index is ignored and rewritten. Run as
//     root it is read without following a link and only when root's
//     (store.ReadState).
//
// renewal.json rewritten in place (an editor that does not rename) is seen
// by its own stamp. What it cannot see is a version's certificate
// overwritten in place (versions are never written again once stored);
// --verify-keys reads everything.
//
// Each entry is stored as the JSON status --json prints, in two pieces
// around the fields that depend on the time, so that status --json copies
// it out; the other forms decode it into a CertStatus.
const (
	statusIndexFile   = "status-index"
	statusIndexHeader = "ipcert-status-index 4 " // then the CRC of the rest, the certs folder's mtime (3: failure texts escaped, issue 22; 4: the key pin)
	racyWindow        = time.Second
	// StatusJSONPrefix is the indentation of a certificate in status
	// --json's report (inside "certificates": [...]).
	StatusJSONPrefix = "    "
)

// folderStamp identifies one state of a certificate folder and of its
// renewal.json (which an editor may rewrite in place, leaving the folder
// as it was).
type folderStamp struct {
	ino            uint64
	mtime, ctime   int64 // ns
	rino           uint64
	rmtime, rctime int64 // renewal.json's; zero when it is missing
}

func stampOf(dir, renewal *unix.Stat_t) folderStamp {
	s := folderStamp{ino: dir.Ino, mtime: dir.Mtim.Nano(), ctime: dir.Ctim.Nano()}
	if renewal != nil {
		s.rino, s.rmtime, s.rctime = renewal.Ino, renewal.Mtim.Nano(), renewal.Ctim.Nano()
	}
	return s
}

// older says nothing in the stamp changed at or after t (ns).
func (s folderStamp) older(t int64) bool {
	return s.mtime < t && s.ctime < t && s.rmtime < t && s.rctime < t
}

// statusEntry is one folder of certs/ in the index: every one is listed
// (so that an unchanged certs folder need not be listed again), and a
// certificate that may be shown from the index is cached.
type statusEntry struct {
	name         string
	cached       bool // false: the name only, the folder is read every time
	stamp        folderStamp
	failed       bool  // LastResult == "failed"
	naSec, naNs  int64 // the certificate's notAfter
	builtNs      int64 // next/why were planned at this moment (unix ns)...
	untilSec     int64 // ...and hold while now.Unix() < untilSec
	head, tail   []byte
	next, reason []byte // JSON values; empty: omitted
}

// statusHead and statusTail are CertStatus before and after the fields
// that depend on the time (ValidFor, Expired, NextRenewal, NextRenewalWhy),
// with the same tags: their indented JSON, spliced around those fields, is
// CertStatus's (TestStatusIndexJSONIsMarshalIndent).
type statusHead struct {
	Name        string    `json:"name"`
	Identifiers []string  `json:"identifiers"`
	CA          string    `json:"ca"`
	Directory   string    `json:"directory,omitempty"`
	Challenge   string    `json:"challenge,omitempty"`
	Version     int       `json:"version,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
}

type statusTail struct {
	SPKIPin      string         `json:"spki_pin,omitempty"`
	PinSince     time.Time      `json:"pin_since,omitzero"`
	ReuseKey     bool           `json:"reuse_key,omitempty"`
	ARINextCheck time.Time      `json:"ari_next_check,omitzero"`
	LastResult   string         `json:"last_result"`
	LastSuccess  time.Time      `json:"last_success,omitzero"`
	LastAttempt  time.Time      `json:"last_attempt,omitzero"`
	Failures     int            `json:"consecutive_failures,omitempty"`
	LastError    *store.Failure `json:"last_error,omitempty"`
	Reload       string         `json:"reload,omitempty"`
	DeployHooks  []string       `json:"deploy_hooks,omitempty"`
	VerifyAddr   string         `json:"verify_addr,omitempty"`
	Problem      string         `json:"problem,omitempty"`
}

// inner is the members of an indented JSON object, without its braces:
// "\n<prefix>  member,\n..." up to the last member.
func inner(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, StatusJSONPrefix, "  ")
	if err != nil {
		return nil, err
	}
	end := len(b) - len(StatusJSONPrefix) - 2 // "\n" + prefix + "}"
	if len(b) < 2 || b[0] != '{' || end < 1 {
		return nil, errors.New("not an object")
	}
	return b[1:end], nil
}

// newStatusEntry makes the index entry of c; ok is false when c must not
// be cached.
func newStatusEntry(c CertStatus, stamp folderStamp, now, until time.Time) (statusEntry, bool) {
	if c.Problem != "" || c.NotAfter.IsZero() || until.IsZero() || c.NextRenewal.IsZero() {
		return statusEntry{}, false
	}
	e := statusEntry{name: c.Name, cached: true, stamp: stamp, failed: c.LastResult == "failed",
		naSec: c.NotAfter.Unix(), naNs: int64(c.NotAfter.Nanosecond()), builtNs: now.UnixNano(), untilSec: until.Unix()}
	var err error
	if e.head, err = inner(statusHead{c.Name, c.Identifiers, c.CA, c.Directory, c.Challenge, c.Version, c.Serial, c.NotBefore, c.NotAfter}); err != nil {
		return statusEntry{}, false
	}
	if e.tail, err = inner(statusTail{c.SPKIPin, c.PinSince, c.ReuseKey, c.ARINextCheck, c.LastResult, c.LastSuccess, c.LastAttempt, c.Failures, c.LastError, c.Reload, c.DeployHooks, c.VerifyAddr, c.Problem}); err != nil {
		return statusEntry{}, false
	}
	if e.next, err = json.Marshal(c.NextRenewal); err != nil {
		return statusEntry{}, false
	}
	if c.NextRenewalWhy != "" {
		e.reason, _ = json.Marshal(c.NextRenewalWhy)
	}
	return e, true
}

// usable says the entry still describes a folder stamped so, at now.
func (e *statusEntry) usable(stamp folderStamp, now time.Time) bool {
	return e.cached && e.stamp == stamp && now.UnixNano() >= e.builtNs && now.Unix() < e.untilSec
}

func (e *statusEntry) notAfter() time.Time { return time.Unix(e.naSec, e.naNs) }

// appendJSON appends the certificate's JSON at now, exactly as
// json.MarshalIndent(CertStatus, StatusJSONPrefix, "  ") writes it.
func (e *statusEntry) appendJSON(b []byte, now time.Time) []byte {
	const member = ",\n" + StatusJSONPrefix + "  "
	valid := e.notAfter().Sub(now)
	b = append(b, '{')
	b = append(b, e.head...)
	b = append(b, member+`"valid_for_ns": `...)
	b = strconv.AppendInt(b, int64(valid), 10)
	b = append(b, member+`"expired": `...)
	b = strconv.AppendBool(b, valid <= 0)
	if len(e.next) > 0 {
		b = append(b, member+`"next_renewal": `...)
		b = append(b, e.next...)
	}
	if len(e.reason) > 0 {
		b = append(b, member+`"next_renewal_reason": `...)
		b = append(b, e.reason...)
	}
	b = append(b, ',')
	b = append(b, e.tail...)
	return append(b, "\n"+StatusJSONPrefix+"}"...)
}

// status decodes the entry into the CertStatus it was made from, at now.
func (e *statusEntry) status(now time.Time) (CertStatus, error) {
	var c CertStatus
	err := json.Unmarshal(e.appendJSON(nil, now), &c)
	return c, err
}

// statusIndex is the index as read: the certs folder's modification time
// when it was written (a folder added or removed changes it) and the
// entries in name order.
type statusIndex struct {
	certsMtime int64
	entries    []statusEntry
}

// get returns the entry of name, looking from *at on (the callers ask in
// name order), and advances *at past it.
func (x *statusIndex) get(name string, at *int) *statusEntry {
	if x == nil {
		return nil
	}
	for *at < len(x.entries) && x.entries[*at].name < name {
		*at++
	}
	if *at < len(x.entries) && x.entries[*at].name == name {
		*at++
		return &x.entries[*at-1]
	}
	return nil
}

// names is the certificates the index lists.
func (x *statusIndex) names() []string {
	out := make([]string, len(x.entries))
	for i := range x.entries {
		out[i] = x.entries[i].name
	}
	return out
}

// readStatusIndex reads the index; nil when there is none that can be
// used.
func readStatusIndex(st *store.Store) *statusIndex {
	data, err := st.ReadState(statusIndexFile)
	if err != nil {
		return nil
	}
	head, body, ok := bytes.Cut(data, []byte{'\n'})
	fields, ok2 := bytes.CutPrefix(head, []byte(statusIndexHeader))
	sum, mt, ok3 := bytes.Cut(fields, []byte{' '})
	if !ok || !ok2 || !ok3 {
		return nil
	}
	if want, err := strconv.ParseUint(string(sum), 10, 32); err != nil || uint32(want) != crc32.ChecksumIEEE(body) {
		return nil
	}
	x := &statusIndex{entries: make([]statusEntry, 0, bytes.Count(body, []byte{'\t'})/11)}
	if x.certsMtime, err = strconv.ParseInt(string(mt), 10, 64); err != nil {
		return nil
	}
	for len(body) > 0 {
		line, rest, ok := bytes.Cut(body, []byte{'\n'})
		if !ok {
			return nil
		}
		var f [15]int64
		name, nums, _ := bytes.Cut(line, []byte{'\t'})
		for i := range f {
			var v []byte
			v, nums, _ = bytes.Cut(nums, []byte{'\t'})
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || (i >= 11 && (n < 0 || n > int64(len(rest)))) {
				return nil
			}
			f[i] = n
		}
		e := statusEntry{name: string(name), stamp: folderStamp{uint64(f[0]), f[1], f[2], uint64(f[3]), f[4], f[5]}, failed: f[6]&1 != 0, cached: f[6]&2 != 0,
			naSec: f[7], naNs: f[8], builtNs: f[9], untilSec: f[10]}
		lens := f[11:]
		total := lens[0] + lens[1] + lens[2] + lens[3]
		if total > int64(len(rest)) || store.ValidName(e.name) != nil {
			return nil
		}
		if n := len(x.entries); n > 0 && x.entries[n-1].name >= e.name {
			return nil // written in name order; anything else is not ours
		}
		e.head, rest = rest[:lens[0]:lens[0]], rest[lens[0]:]
		e.tail, rest = rest[:lens[1]:lens[1]], rest[lens[1]:]
		e.next, rest = rest[:lens[2]:lens[2]], rest[lens[2]:]
		e.reason, rest = rest[:lens[3]:lens[3]], rest[lens[3]:]
		x.entries = append(x.entries, e)
		body = rest
	}
	return x
}

// writeStatusIndex replaces the index with entries (in name order) and
// the certs folder's modification time, best effort: a state directory
// status may not write is read the slow way. Not fsynced: it is a cache,
// and a torn one fails its CRC.
func writeStatusIndex(st *store.Store, certsMtime int64, entries []*statusEntry) {
	var body []byte
	for _, e := range entries {
		body = append(body, e.name...)
		for _, n := range [...]int64{int64(e.stamp.ino), e.stamp.mtime, e.stamp.ctime, int64(e.stamp.rino), e.stamp.rmtime, e.stamp.rctime, b2i(e.failed) | b2i(e.cached)<<1, e.naSec, e.naNs, e.builtNs, e.untilSec,
			int64(len(e.head)), int64(len(e.tail)), int64(len(e.next)), int64(len(e.reason))} {
			body = append(body, '\t')
			body = strconv.AppendInt(body, n, 10)
		}
		body = append(body, '\n')
		body = append(body, e.head...)
		body = append(body, e.tail...)
		body = append(body, e.next...)
		body = append(body, e.reason...)
	}
	f, err := os.CreateTemp(st.Root(), "."+statusIndexFile+".*.tmp")
	if err != nil {
		return
	}
	_, werr := f.WriteString(statusIndexHeader + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10) + " " + strconv.FormatInt(certsMtime, 10) + "\n")
	_, berr := f.Write(body)
	if errors.Join(werr, berr, f.Chmod(0o600), f.Close()) != nil || os.Rename(f.Name(), filepath.Join(st.Root(), statusIndexFile)) != nil {
		os.Remove(f.Name())
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
