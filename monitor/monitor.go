// Package monitor turns the state of the managed certificates into what
// monitoring reads: a Nagios-style check (`ipcert status --check`: one
// line, perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and a
// node_exporter textfile (`--prometheus FILE`) in the Prometheus text
// format, atomically.
package monitor

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/renew"
)

// Nagios plugin states (Nagios Plugin Development Guidelines).
const (
	OK       = 0
	Warning  = 1
	Critical = 2
	Unknown  = 3
)

// StateName is the word a check line starts with.
func StateName(s int) string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[s]
}

// Thresholds for 160-hour certificates: renewal happens at about 80 h
// left, so 48 h left means two days of failed renewals, 24 h the last
// safe day (renew.MaxMargin).
type Thresholds struct {
	Warn, Crit time.Duration
	// FailuresCrit: this many failed renewals in a row are critical.
	FailuresCrit int
}

// DefaultThresholds are the flags' defaults.
var DefaultThresholds = Thresholds{Warn: 48 * time.Hour, Crit: 24 * time.Hour, FailuresCrit: 2}

// Served says, for each certificate with a verify address, whether that
// address serves its current certificate (nil: not checked).
type Served map[string]*bool

// CheckServed asks each verify address which certificate it serves (a
// TLS handshake each, bounded by timeout), as `ipcert verify` does.
func CheckServed(ctx context.Context, certs []deploy.CertStatus, timeout time.Duration) Served {
	out := Served{}
	for _, c := range certs {
		if c.VerifyAddr == "" || c.Serial == "" {
			continue
		}
		res, err := deploy.Verify(ctx, c.VerifyAddr, deploy.VerifyOptions{Timeout: timeout})
		match := err == nil && res.Leaf != nil && fmt.Sprintf("%x", res.Leaf.SerialNumber) == c.Serial
		out[c.Name] = &match
	}
	return out
}

// Check is the Nagios verdict on certs at now: the worst state, one
// summary line, and the perfdata (hours left of the soonest-expiring
// certificate, with the thresholds).
func Check(certs []deploy.CertStatus, served Served, t Thresholds, now time.Time) (int, string) {
	if len(certs) == 0 {
		return Unknown, "IPCERT UNKNOWN - no managed certificates (ipcert issue makes one)"
	}
	state := OK
	var problems []string
	raise := func(s int, msg string) {
		state = max(state, s)
		problems = append(problems, msg)
	}
	soonest := time.Duration(1 << 62)
	soonestName := ""
	for _, c := range certs {
		if c.Problem != "" {
			raise(Critical, fmt.Sprintf("%s: %s", c.Name, firstLine(c.Problem)))
			continue
		}
		left := c.NotAfter.Sub(now)
		if left < soonest {
			soonest, soonestName = left, c.Name
		}
		switch {
		case left <= 0:
			raise(Critical, c.Name+": EXPIRED")
		case left < t.Crit:
			raise(Critical, fmt.Sprintf("%s: %s left", c.Name, hours(left)))
		case left < t.Warn:
			raise(Warning, fmt.Sprintf("%s: %s left", c.Name, hours(left)))
		}
		if c.LastResult == "failed" {
			s := Warning
			if c.Failures >= t.FailuresCrit {
				s = Critical
			}
			raise(s, fmt.Sprintf("%s: %d failed renewal(s) in a row", c.Name, max(c.Failures, 1)))
		}
		if m := served[c.Name]; m != nil && !*m {
			raise(Critical, fmt.Sprintf("%s: %s does not serve the current certificate", c.Name, c.VerifyAddr))
		}
	}
	summary := fmt.Sprintf("%d certificate(s)", len(certs))
	if soonestName != "" {
		summary += fmt.Sprintf(", soonest expiry %s in %s", soonestName, hours(soonest))
	}
	if len(problems) > 0 {
		summary = strings.Join(problems, "; ") + " (" + summary + ")"
	}
	perf := ""
	if soonestName != "" {
		perf = fmt.Sprintf(" | hours_left=%.1f;%.0f;%.0f;0", soonest.Hours(), t.Warn.Hours(), t.Crit.Hours())
	}
	return state, "IPCERT " + StateName(state) + " - " + summary + perf
}

func hours(d time.Duration) string {
	return fmt.Sprintf("%.0f h", d.Hours())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Metrics are the textfile's metric families for certs, the served
// checks and the renewal job's last run (nil: none recorded). Names follow
// the Prometheus conventions: ipcert_ prefix, base units (seconds),
// _timestamp for moments, one label, name.
func Metrics(certs []deploy.CertStatus, served Served, last *renew.LastRun) []*Family {
	var fams []*Family
	family := func(name, help string) *Family {
		f := &Family{Name: name, Help: help}
		fams = append(fams, f)
		return f
	}
	add := func(f *Family, name string, v float64) {
		f.Samples = append(f.Samples, Sample{Name: name, Value: v})
	}
	expiry := family("ipcert_certificate_expiry_timestamp_seconds", "When the current certificate expires (notAfter).")
	attempt := family("ipcert_certificate_last_renewal_attempt_timestamp_seconds", "When a renewal (or the issuance) was last attempted.")
	success := family("ipcert_certificate_last_renewal_success_timestamp_seconds", "When a renewal (or the issuance) last succeeded.")
	next := family("ipcert_certificate_next_renewal_timestamp_seconds", "When ipcert renew will next act on the certificate.")
	problem := family("ipcert_certificate_problem", "1 when the certificate cannot be used or renewed as it is (see ipcert status).")
	failures := family("ipcert_certificate_renewal_failures", "Failed renewal attempts in a row (0 after a success).")
	servedF := family("ipcert_certificate_served_current", "1 when the verify address serves the current certificate, 0 when it serves another; absent when not checked.")
	sorted := slices.Clone(certs)
	slices.SortFunc(sorted, func(a, b deploy.CertStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range sorted {
		p := 0.0
		if c.Problem != "" {
			p = 1
		}
		add(problem, c.Name, p)
		add(failures, c.Name, float64(c.Failures))
		if !c.NotAfter.IsZero() {
			add(expiry, c.Name, float64(c.NotAfter.Unix()))
		}
		if !c.LastAttempt.IsZero() {
			add(attempt, c.Name, float64(c.LastAttempt.Unix()))
		}
		if !c.LastSuccess.IsZero() {
			add(success, c.Name, float64(c.LastSuccess.Unix()))
		}
		if !c.NextRenewal.IsZero() {
			add(next, c.Name, float64(c.NextRenewal.Unix()))
		}
		if m := served[c.Name]; m != nil {
			v := 0.0
			if *m {
				v = 1
			}
			add(servedF, c.Name, v)
		}
	}
	if last != nil {
		lastRun := last.Started.Add(last.Duration)
		if last.LastChecked.After(lastRun) {
			lastRun = last.LastChecked
		}
		add(family("ipcert_renew_last_run_timestamp_seconds", "When ipcert renew last ran."), "", float64(lastRun.Unix()))
		add(family("ipcert_renew_last_change_exit_code", "Exit code of the last ipcert renew run that did or found something (0 nothing due, 10 renewed, 1 failed)."), "", float64(last.ExitCode))
		add(family("ipcert_renew_last_change_duration_seconds", "How long that run took."), "", last.Duration.Seconds())
	}
	// A family without samples is left out, as a registry would.
	return slices.DeleteFunc(fams, func(f *Family) bool { return len(f.Samples) == 0 })
}

// Family is one gauge metric family of the textfile: every metric ipcert
// writes is a gauge with at most the label "name".
type Family struct {
	Name, Help string
	Samples    []Sample
}

// Sample is one line of a family: the certificate it is about (the
// "name" label; empty: no label) and the value.
type Sample struct {
	Name  string
	Value float64
}

// The text format's escapes (Prometheus "Exposition formats"): in HELP a
// backslash and a line feed, in a label value also the double quote.
var (
	helpEscaper  = strings.NewReplacer("\\", `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
)

// AppendText appends f in the Prometheus text format, as the client
// library's writer (expfmt.MetricFamilyToText) writes a gauge family
// (TestTextfileAsExpfmt). Written here rather than with that library:
// its protobuf types cost every ipcert command about half a millisecond
// of start-up, for a file that is a few lines of text.
func (f *Family) AppendText(b []byte) []byte {
	b = append(b, "# HELP "+f.Name+" "...)
	b = append(b, helpEscaper.Replace(f.Help)...)
	b = append(b, "\n# TYPE "+f.Name+" gauge\n"...)
	for _, s := range f.Samples {
		b = append(b, f.Name...)
		if s.Name != "" {
			b = append(b, `{name="`...)
			b = append(b, labelEscaper.Replace(s.Name)...)
			b = append(b, `"}`...)
		}
		b = append(b, ' ')
		switch v := s.Value; {
		case v == 1:
			b = append(b, '1')
		case v == 0:
			b = append(b, '0')
		case v == -1:
			b = append(b, "-1"...)
		case math.IsNaN(v):
			b = append(b, "NaN"...)
		case math.IsInf(v, +1):
			b = append(b, "+Inf"...)
		case math.IsInf(v, -1):
			b = append(b, "-Inf"...)
		default:
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
		b = append(b, '\n')
	}
	return b
}

// WriteTextfile writes the metric families to path in the Prometheus text
// format, atomically (a temporary file renamed into place), mode 0644 so
// that node_exporter's user can read it: names and times, no secrets.
func WriteTextfile(path string, fams []*Family) error {
	if !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("%s: node_exporter's textfile collector reads only files ending in .prom", path)
	}
	var b []byte
	for _, f := range fams {
		b = f.AppendText(b)
	}
	// The folder is often node_exporter's (or its parent is): reached
	// without following a link another user owns, and the file renamed
	// into it, so whoever owns it can swap nothing into root's write.
	if err := safefs.WriteFile(path, b, 0o644, -1, safefs.WriteOptions{}); err != nil {
		return fmt.Errorf("write %s: %w; give a file in an existing folder that node_exporter reads (its --collector.textfile.directory)", path, err)
	}
	return nil
}
