package monitor

import (
	"bytes"
	"math"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/renew"
)

// TestTextfileAsExpfmt: the textfile is byte for byte what the Prometheus
// client library's text writer makes of the same gauge families (it was
// written with it), escapes and number forms included.
func TestTextfileAsExpfmt(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	yes, no := true, false
	certs := []deploy.CertStatus{
		{Name: "b", NotAfter: now.Add(100 * time.Hour), LastAttempt: now, LastSuccess: now, NextRenewal: now.Add(time.Hour), VerifyAddr: "x", Serial: "1"},
		{Name: "a", Problem: "broken", Failures: 3},
		{Name: `q"u\o` + "\nte", Failures: 1},
	}
	fams := Metrics(certs, Served{"b": &yes, "a": &no}, &renew.LastRun{Started: now, Duration: 1234567 * time.Microsecond, ExitCode: 10})
	fams = append(fams, &Family{Name: "ipcert_test_values", Help: "back\\slash and\nnewline \"quoted\"", Samples: []Sample{
		{Value: 1}, {Value: 0}, {Value: -1}, {Value: math.NaN()}, {Value: math.Inf(1)}, {Value: math.Inf(-1)},
		{Value: 1.5e-7}, {Value: 1796745600}, {Value: 12345678901234567890}, {Value: 0.1}, {Name: "n", Value: -2.5},
	}})
	var want bytes.Buffer
	for _, f := range fams {
		d := &dto.MetricFamily{Name: proto.String(f.Name), Help: proto.String(f.Help), Type: dto.MetricType_GAUGE.Enum()}
		for _, s := range f.Samples {
			m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(s.Value)}}
			if s.Name != "" {
				m.Label = []*dto.LabelPair{{Name: proto.String("name"), Value: proto.String(s.Name)}}
			}
			d.Metric = append(d.Metric, m)
		}
		if _, err := expfmt.MetricFamilyToText(&want, d); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	for _, f := range fams {
		got = f.AppendText(got)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got\n%s\nwant (expfmt)\n%s", got, want.Bytes())
	}
	if len(fams) != 11 {
		t.Fatalf("%d families", len(fams))
	}
}
