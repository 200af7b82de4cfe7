package wizard

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

func init() {
	// teatest's golden package defines -update; define it when it is not
	// linked in, so "go test -update" always refreshes testdata/wizard.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata/wizard")
	}
}

func TestMain(m *testing.M) {
	// Views print local times; golden files are in UTC.
	time.Local = time.UTC
	os.Exit(m.Run())
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Test addresses. 81.2.69.160 and 2a02:898:0:20::7 stand for a public
// IPv4 and IPv6 address; no test sends them anything.
var (
	pub4 = netip.MustParseAddr("81.2.69.160")
	pub6 = netip.MustParseAddr("2a02:898:0:20::7")
	lo4  = netip.MustParseAddr("127.0.0.1")
)

func fakeMachine(context.Context) Machine {
	return Machine{UID: 0, CanBindLow: true, Systemd: true, WebServers: []preflight.WebServer{
		{Name: "nginx", Running: true, Installed: true, WebRoot: "/var/www/html", WebRootFrom: "/etc/nginx/sites-enabled/default:12"},
		{Name: "apache", Installed: true},
	}}
}

func fakePublic(context.Context) preflight.PublicAddrs {
	src := func(kind, name string, a netip.Addr) preflight.SourceAnswer {
		return preflight.SourceAnswer{Kind: kind, Source: name, Addr: a}
	}
	return preflight.PublicAddrs{
		V4: preflight.FamilyResult{Family: "ipv4", Addr: pub4, Votes: 4, Answered: 5, Asked: 6, Disagree: true, Sources: []preflight.SourceAnswer{
			src("https", "api.ipify.org", pub4), src("https", "1.1.1.1", pub4), src("dns", "OpenDNS", pub4), src("stun", "stun.l.google.com", pub4),
			src("https", "ifconfig.me", netip.MustParseAddr("81.2.69.161")), {Kind: "dns", Source: "Google", Error: "timeout"},
		}},
		V6: preflight.FamilyResult{Family: "ipv6", Addr: pub6, Votes: 2, Answered: 2, Asked: 3, Sources: []preflight.SourceAnswer{
			src("https", "api6.ipify.org", pub6), src("dns", "OpenDNS", pub6), {Kind: "stun", Source: "stun.cloudflare.com", Error: "timeout"},
		}},
	}
}

func fakeLocalAddrs() ([]preflight.IfaceAddr, error) {
	return []preflight.IfaceAddr{
		{Iface: "lo", Up: true, Addr: lo4, Class: acmeflow.ClassLoopback},
		{Iface: "eth0", Up: true, Addr: netip.MustParseAddr("10.0.0.5"), Class: acmeflow.ClassPrivate},
		{Iface: "eth0", Up: true, Addr: pub6, Class: acmeflow.ClassPublic},
	}, nil
}

// fakeReport is a preflight run with one warning and one failure.
func fakeReport(addrs []netip.Addr) preflight.Report {
	rs := []preflight.Result{
		{ID: preflight.IDPublic4, Title: "Public IPv4 address", Status: preflight.StatusWarn, Summary: "81.2.69.160 (4 of 5 sources agree)", Evidence: []string{"ifconfig.me said 81.2.69.161"}, Fix: "check for a proxy or a second uplink"},
		{ID: preflight.IDNAT, Title: "NAT and cloud", Status: preflight.StatusOK, Summary: "home router NAT; port forwarding needed"},
		{ID: preflight.IDPorts, Title: "Ports 80 and 443", Status: preflight.StatusFail, Summary: "port 80 is held by nginx (pid 812)", Evidence: []string{"0.0.0.0:80 nginx pid 812", "[::]:80 nginx pid 812"}, Fix: "use the web root /var/www/html, or stop nginx while validating"},
		{ID: preflight.IDPrivilege, Title: "Privilege to bind ports below 1024", Status: preflight.StatusOK, Summary: "running as root"},
		{ID: preflight.IDFirewall, Title: "Host firewall", Status: preflight.StatusOK, Summary: "nftables: tcp 80 and 443 accepted"},
		{ID: preflight.IDAddress, Title: "The address Let's Encrypt will validate", Status: preflight.StatusOK, Summary: "public addresses Let's Encrypt accepts"},
	}
	rep := preflight.Report{Schema: 1, Verdict: preflight.StatusFail, Addrs: addrs, Results: rs}
	rep.NAT.Kind = "home-nat"
	return rep
}

func fakePreflight(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
	rep := fakeReport(req.Addrs)
	for i := range rep.Results {
		r := rep.Results[i]
		progress(preflight.Event{Kind: preflight.EventStart, ID: r.ID, Title: r.Title})
		progress(preflight.Event{Kind: preflight.EventFinish, ID: r.ID, Title: r.Title, Result: &r})
	}
	return rep
}

// issuerFunc is an Issuer made of a function.
type issuerFunc func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error)

func (f issuerFunc) Issue(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
	return f(ctx, req, opts)
}

func fakeIssued(name, ca string, addrs ...netip.Addr) *acmeflow.Issued {
	ids := make([]string, len(addrs))
	for i, a := range addrs {
		ids[i] = a.String()
	}
	return &acmeflow.Issued{Name: name, Version: store.Version{N: 1}, Renewal: &store.Renewal{Issuance: spec.Issuance{Identifiers: ids, CA: spec.CAChoice(ca), Challenge: "http-01"}, Name: name, NotBefore: fixedNow.Add(-time.Hour), NotAfter: fixedNow.Add(159 * time.Hour)}}
}

// fakeCA opens a CA choice without any network: the fake issuers never
// use it.
func fakeCA(choice, _ string) (*cachoice.CA, error) {
	return &cachoice.CA{Choice: spec.CAChoice(choice), Directory: "https://ca.invalid/" + choice, Public: choice != cachoice.Local, Local: choice == cachoice.Local}, nil
}

// realSnippet is the snippet ipcert writes for kind (deploy.Snippet): the
// Install screen must show it verbatim, long lines and all.
func realSnippet(kind deploy.Kind) string {
	b, err := deploy.Snippet(kind, deploy.SnippetParams{Name: "81.2.69.160", Identifiers: []string{"81.2.69.160"},
		CertDir: "/var/lib/ipcert/certs/81.2.69.160/current", WebRoot: "/var/www/html", Distro: deploy.Debian})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func fakeDeps(iss Issuer) Deps {
	return Deps{
		Machine: fakeMachine, DetectPublic: fakePublic, LocalAddrs: fakeLocalAddrs,
		Preflight: fakePreflight, OpenCA: fakeCA, Issuer: iss,
		Now: func() time.Time { return fixedNow },
		Servers: func(ctx context.Context, iss *acmeflow.Issued) []InstallTarget {
			return []InstallTarget{
				{Kind: "nginx", Running: true, CanInstall: true, ConfigPath: "/etc/nginx/conf.d/ipcert-81.2.69.160.conf",
					Snippet: realSnippet(deploy.Nginx), WebRoot: "/var/www/html"},
				{Kind: "apache", CanInstall: true, ConfigPath: "/etc/apache2/sites-available/ipcert-81.2.69.160.conf", Snippet: realSnippet(deploy.Apache), WebRoot: "/var/www/html"},
			}
		},
		Install: func(ctx context.Context, iss *acmeflow.Issued, t InstallTarget) Report {
			return Report{Status: ui.OK, Summary: t.Kind + " serves the certificate (config test passed, reloaded)",
				Lines: []string{"nginx -t: syntax is ok", "wrote " + t.ConfigPath, "systemctl reload nginx"}}
		},
		Timer: func(ctx context.Context, iss *acmeflow.Issued) Report {
			return Report{Status: ui.OK, Summary: "renewal timer installed (systemd: ipcert-renew.timer)",
				Lines: []string{"/etc/systemd/system/ipcert-renew.service", "/etc/systemd/system/ipcert-renew.timer"}}
		},
		DryRenew: func(ctx context.Context, iss *acmeflow.Issued) Report {
			return Report{Status: ui.Warn, Summary: "dry renewal: staging refused the order",
				Lines: []string{"rateLimited: too many new orders recently"}, Fix: "wait an hour and run: sudo ipcert renew --dry-run"}
		},
		Verify: func(ctx context.Context, iss *acmeflow.Issued) Report {
			return Report{Status: ui.OK, Summary: "81.2.69.160:443 serves the new certificate",
				Lines: []string{"TLS 1.3, chain sent, valid for 159 hours", "a browser would accept it"}}
		},
	}
}

// testConfig is a colourless configuration whose spinner never ticks, so
// views are stable.
func testConfig(demo bool) Config {
	return Config{Demo: demo, Caps: ui.Caps{NoColor: true}, StateDir: "/var/lib/ipcert", SpinEvery: time.Hour}
}

// driver runs a Model in a real tea.Program (teatest's), the one harness
// of the wizard's flows. Between the driver's calls the program is held:
// its goroutine waits inside Update (a probeMsg), so the test reads and
// changes the model without a data race, and no message is handled
// behind its back. Each call lets the program go, sends its message, and
// holds it again once the message has been handled; until lets it run
// until a condition on the model, checked inside the program after every
// message, holds. The commands the model returns run as in production
// (Batch, Sequence and Quit by tea.Program itself).
type driver struct {
	t  testing.TB
	m  *Model
	tm *teatest.TestModel
	h  *probed
	// held: the program waits in hold for resume.
	held bool
}

// probed is the model the program runs: the wizard, plus the probe that
// runs a function inside the program's goroutine and the wait for a
// condition.
type probed struct {
	m *Model
	// wait is checked after every message (set and cleared inside the
	// program); when it holds, the program is held there.
	wait func() bool
	// held receives when the program is held; resume lets it go.
	held, resume chan struct{}
	// finished is closed when the program has ended; closing ends a hold
	// for good (cleanup).
	finished, closing chan struct{}
}

// probeMsg runs fn inside the program's goroutine.
type probeMsg struct{ fn func() }

func (p *probed) Init() tea.Cmd { return p.m.Init() }

func (p *probed) View() string { return p.m.View() }

// burstMsg hands the model several messages in one go, before any
// command they return has run: keys typed in one burst (a paste, ssh).
type burstMsg []tea.Msg

func (p *probed) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if pm, ok := msg.(probeMsg); ok {
		pm.fn()
		return p, nil
	}
	if b, ok := msg.(burstMsg); ok {
		var cmds []tea.Cmd
		for _, m := range b {
			_, cmd := p.m.Update(m)
			cmds = append(cmds, cmd)
		}
		return p, tea.Batch(cmds...)
	}
	_, cmd := p.m.Update(msg)
	if p.wait != nil && p.wait() {
		p.wait = nil
		p.hold()
	}
	return p, cmd
}

// hold blocks the program's goroutine until the test resumes it.
func (p *probed) hold() {
	select {
	case p.held <- struct{}{}:
		select {
		case <-p.resume:
		case <-p.closing:
		}
	case <-p.closing:
	}
}

func newDriver(t testing.TB, deps Deps, cfg Config, w, h int) *driver {
	t.Helper()
	m := New(context.Background(), deps, cfg)
	t.Cleanup(m.Shutdown)
	p := &probed{m: m, held: make(chan struct{}), resume: make(chan struct{}), finished: make(chan struct{}), closing: make(chan struct{})}
	tm := teatest.NewTestModel(t, p, teatest.WithInitialTermSize(w, h))
	d := &driver{t: t, m: m, tm: tm, h: p}
	go func() {
		tm.WaitFinished(t)
		close(p.finished)
	}()
	t.Cleanup(func() {
		close(p.closing) // a held program goes on, for good
		_ = tm.Quit()
		select {
		case <-p.finished:
		case <-time.After(10 * time.Second):
			t.Errorf("the wizard's program did not end after the test")
		}
	})
	d.hold()
	return d
}

// hold waits until the program has handled what was sent before, and
// holds it; false when the program has ended (the model quit).
func (d *driver) hold() bool {
	d.t.Helper()
	if d.held {
		return true
	}
	// Sent from a goroutine: Send blocks until the program takes it, and
	// returns once the program has ended.
	go d.tm.Send(probeMsg{fn: d.h.hold})
	select {
	case <-d.h.held:
		d.held = true
		return true
	case <-d.h.finished:
		return false
	case <-time.After(10 * time.Second):
		d.t.Fatalf("the wizard's program did not take a message within 10s")
	}
	return false
}

// release lets the held program go on.
func (d *driver) release() {
	if !d.held {
		return
	}
	d.held = false
	select {
	case d.h.resume <- struct{}{}:
	case <-d.h.finished:
	}
}

// send hands msg to the program and returns when it has been handled.
func (d *driver) send(msg tea.Msg) {
	d.t.Helper()
	d.release()
	select {
	case <-d.h.finished:
		return // the model quit: nothing takes messages any more
	default:
	}
	d.tm.Send(msg)
	d.hold()
}

// until lets the program run until cond holds (checked inside the
// program after every message), or fails the test after 10 s.
func (d *driver) until(what string, cond func() bool) {
	d.t.Helper()
	if !d.hold() || cond() {
		return
	}
	d.h.wait = cond
	d.release()
	select {
	case <-d.h.held:
		d.held = true
		return
	case <-d.h.finished:
		return
	case <-time.After(10 * time.Second):
	}
	// Hold it again to read the screen (held by the probe, or by the
	// condition come true at the deadline: timed out either way).
	d.hold()
	d.h.wait = nil
	d.t.Fatalf("timed out waiting for %s; screen:\n%s", what, d.view())
}

// waitFor lets the program run until ch is closed or receives (something
// outside the model, such as a fake dependency being called), or fails
// the test after 10 s; the program is held again afterwards.
func (d *driver) waitFor(what string, ch <-chan struct{}) {
	d.t.Helper()
	d.release()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		d.hold()
		d.t.Fatalf("timed out waiting for %s; screen:\n%s", what, d.view())
	}
	d.hold()
}

func (d *driver) key(k string) {
	d.send(keyMsg(k))
}

func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "left":
		return tea.KeyMsg{Type: tea.KeyLeft}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "space":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	case "backspace":
		return tea.KeyMsg{Type: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

func (d *driver) typeText(s string) {
	for _, r := range s {
		d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// view is the screen without styling, trailing spaces trimmed: the
// model's View, drawn while the program is held.
func (d *driver) view() string {
	d.hold()
	return plainView(d.m.View())
}

func plainView(s string) string {
	lines := strings.Split(ansi.Strip(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}

func (d *driver) focused() string {
	if d.m.plan.form == nil {
		return ""
	}
	if f := d.m.plan.form.GetFocusedField(); f != nil {
		return f.GetKey()
	}
	return ""
}

// golden compares a screen with testdata/wizard/NAME.golden; go test
// -update rewrites the files (the flag is teatest's golden package's).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "wizard", name+".golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./wizard -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("screen %s differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, path, got, want)
	}
}

// consentReady says the terms question is current and takes keys.
func (s *planStep) consentReady() bool {
	return s.focusedKey() == "tos" && s.consent != nil && s.consent.armed
}
