// Package monitor turns the state of the managed certificates into what
// monitoring reads: a Nagios-style check (`ipcert status --check`: one
// line, perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and a
// node_exporter textfile (`--prometheus FILE`), written with the
// Prometheus client library's own text format writer (expfmt), atomically.
package monitor

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/ipcert/ipcert/acmeflow/renew"
	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/deploy"
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
func Metrics(certs []deploy.CertStatus, served Served, last *renew.LastRun) []*dto.MetricFamily {
	var fams []*dto.MetricFamily
	family := func(name, help string) *dto.MetricFamily {
		f := &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum()}
		fams = append(fams, f)
		return f
	}
	add := func(f *dto.MetricFamily, name string, v float64) {
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(v)}}
		if name != "" {
			m.Label = []*dto.LabelPair{{Name: proto.String("name"), Value: proto.String(name)}}
		}
		f.Metric = append(f.Metric, m)
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
	return slices.DeleteFunc(fams, func(f *dto.MetricFamily) bool { return len(f.Metric) == 0 })
}

// WriteTextfile writes the metric families to path in the Prometheus text
// format (the client library's own writer, expfmt), atomically (a
// temporary file renamed into place), mode 0644 so that node_exporter's
// user can read it: names and times, no secrets.
func WriteTextfile(path string, fams []*dto.MetricFamily) error {
	if !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("%s: node_exporter's textfile collector reads only files ending in .prom", path)
	}
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			return err
		}
	}
	if err := store.WriteFileAtomic(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w; give a file in an existing folder that node_exporter reads (its --collector.textfile.directory)", path, err)
	}
	return nil
}
