package renew

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// The renewal index, <state>/renew-index, keeps for every certificate the
// moment Plan's answer can next change (Decision.At of a Wait), the reason
// to show until then, and the expiry for the warnings: a run with nothing
// due reads this one file and parses no renewal.json, which at thousands
// of certificates was most of its time. It is renew's own; the store notes
// every renewal.json write by name (store.Changed), and those entries are
// planned again from renewal.json until a run that holds the lock folds
// them in (foldIndex). One line per certificate:
//
//	NAME <tab> NEXT (unix seconds; 0: plan it) <tab> NOT_AFTER (unix seconds) <tab> REASON
const (
	indexFile   = "renew-index"
	indexHeader = "ipcert-renew-index 1" // then the certs folder's mtime in ns
)

type indexEntry struct {
	next     int64 // Plan may answer otherwise from this second on; 0: always plan
	notAfter int64
	reason   string
}

// entryFor is the index entry of r as planned at now: only a Wait that
// chose nothing new can be skipped until its At.
func entryFor(r *store.Renewal, d Decision) indexEntry {
	e := indexEntry{notAfter: r.NotAfter.Unix()}
	if d.Action == Wait && !d.Picked && d.Broken == "" && !d.At.IsZero() {
		e.next, e.reason = d.At.Unix(), strings.NewReplacer("\t", " ", "\n", " ").Replace(d.Reason)
	}
	return e
}

// index is renew-index as read: names sorted, entries beside them, and
// the modification time of the certs folder when it was written (a folder
// added or removed behind the store's back changes it).
type index struct {
	certsMtime int64
	names      []string
	entries    []indexEntry
	byName     map[string]int
}

func (x *index) get(name string) (indexEntry, bool) {
	if x == nil {
		return indexEntry{}, false
	}
	if x.byName == nil {
		x.byName = make(map[string]int, len(x.names))
		for i, n := range x.names {
			x.byName[n] = i
		}
	}
	i, ok := x.byName[name]
	if !ok {
		return indexEntry{}, false
	}
	return x.entries[i], true
}

func readIndex(st *store.Store) (*index, bool) {
	// The names and reasons are slices of the file as read, a string
	// read directly (at 10,000 certificates a copy of it was a quarter of a
	// run's allocations, and the garbage collection they started).
	text, err := st.ReadStateString(indexFile)
	if err != nil || text == "" {
		return nil, false
	}
	head, rest, ok := strings.Cut(text, "\n")
	mt, ok2 := strings.CutPrefix(head, indexHeader+" ")
	if !ok || !ok2 {
		return nil, false
	}
	x := &index{}
	if x.certsMtime, err = strconv.ParseInt(mt, 10, 64); err != nil {
		return nil, false
	}
	n := strings.Count(rest, "\n")
	x.names, x.entries = make([]string, 0, n), make([]indexEntry, 0, n)
	for line := range strings.SplitSeq(rest, "\n") {
		if line == "" {
			continue
		}
		name, a, ok1 := strings.Cut(line, "\t")
		nextS, b, ok2 := strings.Cut(a, "\t")
		naS, reason, ok3 := strings.Cut(b, "\t")
		next, err1 := strconv.ParseInt(nextS, 10, 64)
		na, err2 := strconv.ParseInt(naS, 10, 64)
		if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || store.ValidName(name) != nil {
			return nil, false
		}
		if len(x.names) > 0 && x.names[len(x.names)-1] >= name {
			return nil, false // written sorted; anything else is not ours
		}
		x.names = append(x.names, name)
		x.entries = append(x.entries, indexEntry{next: next, notAfter: na, reason: reason})
	}
	return x, true
}

func writeIndex(st *store.Store, certsMtime int64, idx map[string]indexEntry) error {
	names := make([]string, 0, len(idx))
	for n := range idx {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(len(idx) * 96)
	b.WriteString(indexHeader + " " + strconv.FormatInt(certsMtime, 10) + "\n")
	for _, name := range names {
		e := idx[name]
		b.WriteString(name)
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(e.next, 10))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(e.notAfter, 10))
		b.WriteByte('\t')
		b.WriteString(e.reason)
		b.WriteByte('\n')
	}
	return st.WriteState(indexFile, []byte(b.String()))
}

// skip says the certificate may be left alone at now on its index entry.
func (e indexEntry) skip(now time.Time) bool {
	return e.next > 0 && now.Unix() < e.next
}

// foldIndex rewrites the index under the store lock: the entries planned
// in this run (fresh) over the old ones, the certificates whose
// renewal.json changed since (store.Changed) planned again, vanished ones
// dropped; then the change notes are cleared.
func (rn *Runner) foldIndex(old *index, fresh map[string]indexEntry, names []string, now time.Time) {
	mtime, err := rn.Store.CertsMtime()
	if err != nil {
		return
	}
	changed, err := rn.Store.Changed()
	if err != nil {
		return
	}
	idx := make(map[string]indexEntry, len(names))
	alive := make(map[string]bool, len(names))
	for _, n := range names {
		alive[n] = true
		if e, ok := fresh[n]; ok {
			idx[n] = e
		} else if e, ok := old.get(n); ok {
			idx[n] = e
		}
	}
	for _, n := range changed {
		if !alive[n] {
			continue
		}
		r, err := rn.Store.LoadRenewal(n)
		if err != nil {
			delete(idx, n) // read (and reported) by every run until fixed
			continue
		}
		idx[n] = entryFor(r, rn.plan(r, now, false))
	}
	if writeIndex(rn.Store, mtime, idx) == nil {
		_ = rn.Store.ClearChanged()
	}
}
