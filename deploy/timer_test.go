package deploy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

var timerGoldenConfig = TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: "/etc/ipcert", WritablePaths: []string{"/var/www/html"}, Minute: 17}

func TestTimerGolden(t *testing.T) {
	svc, tmr, err := TimerUnits(timerGoldenConfig)
	if err != nil {
		t.Fatal(err)
	}
	cron, err := TimerCronEntry(timerGoldenConfig, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{TimerServiceName: svc, TimerTimerName: tmr, TimerCronName: cron} {
		path := filepath.Join("..", "testdata", "units", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./deploy -run TestTimerGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s:\n%s", name, path, got)
		}
	}
	for _, want := range []string{"ReadWritePaths=/etc/ipcert /var/www/html", "ExecStart=/usr/local/bin/ipcert renew --quiet --state-dir /etc/ipcert", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "SystemCallFilter="} {
		if !bytes.Contains(svc, []byte(want)) {
			t.Errorf("service lacks %q", want)
		}
	}
	for _, want := range []string{"OnCalendar=hourly", "RandomizedDelaySec=", "Persistent=true"} {
		if !bytes.Contains(tmr, []byte(want)) {
			t.Errorf("timer lacks %q", want)
		}
	}
	if !bytes.Contains(cron, []byte("\n17 * * * * root /usr/local/bin/ipcert renew --quiet --state-dir /etc/ipcert")) {
		t.Errorf("cron entry:\n%s", cron)
	}
}

func TestTimerRefusesOddPaths(t *testing.T) {
	for _, c := range []TimerConfig{
		{Binary: "ipcert", StateDir: "/etc/ipcert"},
		{Binary: "/usr/bin/ipcert", StateDir: "/etc/ip cert"},
		{Binary: "/usr/bin/ipcert", StateDir: "/etc/ipcert", WritablePaths: []string{"/srv/100%"}},
		{Binary: "/usr/bin/ipcert"},
	} {
		if _, _, err := TimerUnits(c); err == nil {
			t.Errorf("TimerUnits(%+v) accepted", c)
		}
		if _, err := TimerCronEntry(c, rand.New(rand.NewPCG(1, 1))); err == nil {
			t.Errorf("TimerCronEntry(%+v) accepted", c)
		}
	}
}

// writeUnits writes the units for a binary that exists (systemd-analyze
// verify checks that ExecStart can be executed).
func writeUnits(t *testing.T) (dir string) {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	svc, tmr, err := TimerUnits(TimerConfig{Binary: bin, StateDir: t.TempDir(), WritablePaths: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{TimerServiceName: svc, TimerTimerName: tmr} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTimerUnitsVerify(t *testing.T) {
	sa := testkit.NeedProgram(t, "systemd-analyze", "systemd")
	dir := writeUnits(t)
	cmd := exec.Command(sa, "verify", filepath.Join(dir, TimerServiceName), filepath.Join(dir, TimerTimerName))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestTimerServiceSecurity(t *testing.T) {
	sa := testkit.NeedProgram(t, "systemd-analyze", "systemd")
	for _, state := range []string{"/etc/ipcert", "/root/.local/state/ipcert"} {
		dir := t.TempDir()
		svc, _, err := TimerUnits(TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, TimerServiceName)
		if err := os.WriteFile(path, svc, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("state %s: exposure level %.1f", state, score)
		if score > 2.5 {
			t.Fatalf("state %s: exposure level %.1f > 2.5:\n%s", state, score, out)
		}
	}
}

// timerRecorder records commands instead of running them.
type timerRecorder struct {
	mu    sync.Mutex
	calls []string
	out   map[string]string
}

func (r *timerRecorder) Run(_ context.Context, c Cmd) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c.String())
	for prefix, out := range r.out {
		if strings.HasPrefix(c.String(), prefix) {
			return []byte(out), nil
		}
	}
	return nil, nil
}

func TestTimerInstallRemoveUnitDir(t *testing.T) {
	ctx := context.Background()
	rec := &timerRecorder{}
	o := TimerOptions{Config: TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: "/etc/ipcert"}, UnitDir: t.TempDir(), Runner: rec}
	res, err := TimerInstall(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != TimerSystemd || len(res.Files) != 2 || res.Unchanged {
		t.Fatalf("install: %+v", res)
	}
	if res, err = TimerInstall(ctx, o); err != nil || !res.Unchanged {
		t.Fatalf("second install: %+v %v", res, err)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("systemctl called for a unit dir that is not the system's: %v", rec.calls)
	}
	st, err := TimerStatus(ctx, o)
	if err != nil || st.Mode != TimerSystemd || len(st.Files) != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
	res, err = TimerRemove(ctx, o)
	if err != nil || len(res.Files) != 2 {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if st, _ := TimerStatus(ctx, o); st.Mode != "" {
		t.Fatalf("status after remove: %+v", st)
	}
}

func TestTimerCronKeepsMinute(t *testing.T) {
	ctx := context.Background()
	o := TimerOptions{Config: TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: "/etc/ipcert", Minute: -1}, CronDir: t.TempDir(), Rand: rand.New(rand.NewPCG(3, 4))}
	if _, err := TimerInstall(ctx, o); err != nil {
		t.Fatal(err)
	}
	st, err := TimerStatus(ctx, o)
	if err != nil || st.Mode != TimerCron {
		t.Fatalf("status: %+v %v", st, err)
	}
	// A reinstall with another random source keeps the minute.
	o.Rand = rand.New(rand.NewPCG(99, 99))
	res, err := TimerInstall(ctx, o)
	if err != nil || !res.Unchanged {
		t.Fatalf("reinstall moved the job: %+v %v", res, err)
	}
	fi, err := os.Stat(filepath.Join(o.CronDir, TimerCronName))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("cron file mode: %v %v", fi.Mode(), err)
	}
}

// Under a running systemd (a root with /run/systemd/system and the default
// unit dir), install enables the timer and status asks systemctl.
func TestTimerLiveSystemdCommands(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &timerRecorder{out: map[string]string{
		"systemctl show ipcert-renew.timer":   "ActiveState=active\nLastTriggerUSec=Sat 2026-11-28 20:00:05 UTC\nNextElapseUSecRealtime=Sat 2026-11-28 21:23:00 UTC\n",
		"systemctl show ipcert-renew.service": "Result=success\nExecMainStatus=0\nExecMainExitTimestamp=Sat 2026-11-28 20:00:05 UTC\n",
	}}
	o := TimerOptions{Config: TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: "/etc/ipcert"}, Root: root, Runner: rec}
	res, err := TimerInstall(ctx, o)
	if err != nil || res.Mode != TimerSystemd {
		t.Fatalf("install: %+v %v", res, err)
	}
	if got := strings.Join(rec.calls, "; "); got != "systemctl daemon-reload; systemctl enable --now ipcert-renew.timer" {
		t.Fatalf("calls: %s", got)
	}
	st, err := TimerStatus(ctx, o)
	if err != nil || st.Active != "active" || st.LastExit != "0" || !strings.Contains(st.NextRun, "21:23") {
		t.Fatalf("status: %+v %v", st, err)
	}
	rec.calls = nil
	if _, err := TimerRemove(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.calls, "; "); got != "systemctl disable --now ipcert-renew.timer; systemctl daemon-reload" {
		t.Fatalf("remove calls: %s", got)
	}
}

// A state directory under /root (or /home) must stay reachable.
func TestTimerStateUnderHome(t *testing.T) {
	svc, _, err := TimerUnits(TimerConfig{Binary: "/usr/local/bin/ipcert", StateDir: "/root/.local/state/ipcert"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svc, []byte("\nProtectHome=read-only\n")) {
		t.Fatalf("state under /root but:\n%s", svc)
	}
	svc, _, _ = TimerUnits(timerGoldenConfig)
	if !bytes.Contains(svc, []byte("\nProtectHome=yes\n")) {
		t.Fatalf("state in /etc but:\n%s", svc)
	}
}

// Issue 22, defence in depth: the renewal unit bounds memory and tasks
// (and systemd-analyze verify, above, accepts them).
func TestTimerServiceLimits(t *testing.T) {
	svc, _, err := TimerUnits(TimerConfig{Binary: "/usr/bin/ipcert", StateDir: "/etc/ipcert"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nMemoryMax=512M\n", "\nMemorySwapMax=0\n", "\nTasksMax=256\n"} {
		if !bytes.Contains(svc, []byte(want)) {
			t.Errorf("the service lacks %q", strings.TrimSpace(want))
		}
	}
}
