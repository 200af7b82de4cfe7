package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ipcert/ipcert/internal/safefs"
)

// Names of the renewal job's files.
const (
	TimerServiceName    = "ipcert-renew.service"
	TimerTimerName      = "ipcert-renew.timer"
	TimerCronName       = "ipcert-renew" // in /etc/cron.d: no dot, cron ignores names with one
	TimerDefaultUnitDir = "/etc/systemd/system"
	TimerDefaultCronDir = "/etc/cron.d"
)

// TimerMode says how the renewal job is scheduled.
type TimerMode string

const (
	TimerAuto    TimerMode = ""        // systemd when it is PID 1, else cron
	TimerSystemd TimerMode = "systemd" // a service and a timer
	TimerCron    TimerMode = "cron"    // a line in /etc/cron.d
)

// TimerConfig is what the renewal job runs.
type TimerConfig struct {
	// Binary is the absolute path of the ipcert executable.
	Binary string
	// StateDir is the state directory: passed to renew, and the one
	// directory the service may write.
	StateDir string
	// WritablePaths are further directories renew writes: web roots that
	// http-01 answers go into.
	WritablePaths []string
	// Minute is the cron minute (0-59); -1 picks one at random, so that
	// machines do not all knock at the CA at the same minute (docs/letsencrypt.md:
	// randomise batch jobs).
	Minute int
}

func (c TimerConfig) check() error {
	paths := append([]string{c.Binary, c.StateDir}, c.WritablePaths...)
	for i, p := range paths {
		if p == "" && i < 2 {
			return errors.New("the renewal job needs the ipcert binary and the state directory")
		}
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%q is not an absolute path; the timer runs from /, give the full path", p)
		}
		// systemd unit files and crontabs each have their own quoting and
		// specifier rules ('%' is special in both): paths that need any of
		// them are refused rather than half-escaped.
		if strings.ContainsAny(p, " \t\n\"'\\%$`;&|<>*?") {
			return fmt.Errorf("path %q has a space or a character unit files and crontabs treat specially; move it to a plain path", p)
		}
	}
	return nil
}

// TimerUnits returns the systemd service and timer that run `ipcert renew`
// every hour.
//
// The service is hardened (systemd-analyze security rates it 1.7,
// "OK"): the whole file system is read-only except the state directory and
// the configured web roots, /tmp is private, no new privileges, and the
// only capability is CAP_NET_BIND_SERVICE, for the http-01 (80) and
// tls-alpn-01 (443) responders. It still runs as root, because the reload
// hooks must be able to ask systemd to reload a web server
// ("systemctl reload nginx"), which systemd grants to uid 0 over its
// private AF_UNIX socket without polkit; AF_UNIX is allowed for that (and
// for the journal), AF_NETLINK for listing interfaces when following the
// public address. The price: a user deploy hook also runs inside this
// sandbox, so a hook that writes outside the state directory, or needs a
// privileged system call (chown, setuid), fails; give it its paths with
// ReadWritePaths in a drop-in (systemctl edit ipcert-renew.service).
func TimerUnits(c TimerConfig) (service, timer []byte, err error) {
	if err := c.check(); err != nil {
		return nil, nil, err
	}
	rw := append([]string{c.StateDir}, c.WritablePaths...)
	// ProtectHome=yes hides /home, /root and /run/user entirely; a state
	// directory in there (a non-root install, ~/.local/state/ipcert) needs
	// them visible, read-only but for ReadWritePaths.
	protectHome := "yes"
	for _, p := range rw {
		for _, h := range []string{"/home", "/root", "/run/user"} {
			if p == h || strings.HasPrefix(p, h+"/") {
				protectHome = "read-only"
			}
		}
	}
	var s bytes.Buffer
	fmt.Fprintf(&s, `# Written by "ipcert timer install"; "ipcert timer remove" deletes it.
[Unit]
Description=Renew ipcert certificates that are due
Documentation=man:systemd.exec(5)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=%s renew --quiet --state-dir %s
# 10: renewed; 4: another ipcert run held the lock (it renews instead).
SuccessExitStatus=10 4
TimeoutStartSec=30min
UMask=0077
ReadWritePaths=%s
ProtectSystem=strict
ProtectHome=%s
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
PrivateIPC=yes
DevicePolicy=closed
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# Defence in depth (issue 22): whatever a peer sends or a hook does, the
# run stays bounded. One run renewing 100 due certificates peaks at 27 MB,
# 1,000 at 101 MB (docs/renew.md); 512M is five times that. 256 tasks
# cover --parallel 64 hooks (sh and one child each) beside the Go
# runtime's threads.
MemoryMax=512M
MemorySwapMax=0
TasksMax=256
`, c.Binary, c.StateDir, strings.Join(rw, " "), protectHome)
	t := []byte(`# Written by "ipcert timer install"; "ipcert timer remove" deletes it.
[Unit]
Description=Run ipcert renew every hour

[Timer]
OnCalendar=hourly
# A random but fixed offset per machine: spreads the load on the CA
# (docs/letsencrypt.md) and keeps the runs an hour apart.
RandomizedDelaySec=1h
FixedRandomDelay=true
# A run missed while the machine was off happens at the next boot.
Persistent=true
AccuracySec=1min

[Install]
WantedBy=timers.target
`)
	return s.Bytes(), t, nil
}

// TimerCronEntry returns /etc/cron.d/ipcert-renew: hourly at c.Minute,
// output to syslog.
func TimerCronEntry(c TimerConfig, rnd *rand.Rand) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	m := c.Minute
	if m < 0 || m > 59 {
		m = rnd.IntN(60)
	}
	return fmt.Appendf(nil, `# Written by "ipcert timer install"; "ipcert timer remove" deletes it.
# Renew ipcert certificates every hour, at a minute chosen at random for
# this machine (it spreads the load on the CA).
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
%d * * * * root %s renew --quiet --state-dir %s 2>&1 | logger -t ipcert-renew
`, m, c.Binary, c.StateDir), nil
}

// TimerSystemdRunning reports whether systemd is the init system of the
// machine whose root is root (sd_booted(3): /run/systemd/system exists).
func TimerSystemdRunning(root string) bool {
	fi, err := os.Stat(filepath.Join(root, "run/systemd/system"))
	return err == nil && fi.IsDir()
}

// TimerOptions say where the job goes.
type TimerOptions struct {
	Config TimerConfig
	Mode   TimerMode
	// UnitDir and CronDir default to /etc/systemd/system and /etc/cron.d.
	// systemctl is called only for the default UnitDir: units written
	// elsewhere (tests, images being built) are not the running system's.
	UnitDir, CronDir string
	// Root is the file system root for detection; default "/".
	Root   string
	Runner Runner // default ExecRunner
	Rand   *rand.Rand
}

func (o *TimerOptions) defaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if o.Mode == TimerAuto {
		switch {
		case o.UnitDir != "":
			o.Mode = TimerSystemd
		case o.CronDir != "":
			o.Mode = TimerCron
		case TimerSystemdRunning(o.Root):
			o.Mode = TimerSystemd
		default:
			o.Mode = TimerCron
		}
	}
	if o.UnitDir == "" {
		o.UnitDir = filepath.Join(o.Root, TimerDefaultUnitDir)
	}
	if o.CronDir == "" {
		o.CronDir = filepath.Join(o.Root, TimerDefaultCronDir)
	}
}

func (o *TimerOptions) liveSystemd() bool {
	return filepath.Clean(o.UnitDir) == filepath.Join(o.Root, TimerDefaultUnitDir) && TimerSystemdRunning(o.Root)
}

// TimerResult says what install or remove did.
type TimerResult struct {
	Mode     TimerMode `json:"mode"`
	Files    []string  `json:"files"`
	Commands []string  `json:"commands,omitempty"` // systemctl calls made
	// Unchanged: the files already had this content.
	Unchanged bool `json:"unchanged,omitempty"`
}

// TimerCheckBinary refuses, when run as root, a binary another user could
// replace or change: the job runs it as root every hour, so the file and
// every directory above it must belong to root and be writable by nobody
// else (issue 12; sshd's StrictModes, cron's checks of its crontabs).
func TimerCheckBinary(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return safefs.CheckOwned(path, fmt.Sprintf("install a root-owned copy and point the job at it: sudo install -o root -g root -m 0755 %s /usr/local/bin/ipcert && sudo /usr/local/bin/ipcert timer install", path))
}

// The Debian package ships the units (disabled) where the system's
// packages keep theirs, for the packaged binary and state directory.
const (
	PackagedUnitDir  = "/lib/systemd/system"
	PackagedBinary   = "/usr/bin/ipcert"
	PackagedStateDir = "/etc/ipcert"
	webrootsDropIn   = "ipcert-webroots.conf"
)

// PackagedUnits are the units the package ships: those TimerUnits writes
// for the packaged binary and state, saying so in their first line.
func PackagedUnits() (service, timer []byte, err error) {
	svc, tmr, err := TimerUnits(TimerConfig{Binary: PackagedBinary, StateDir: PackagedStateDir})
	if err != nil {
		return nil, nil, err
	}
	const ours = `# Written by "ipcert timer install"; "ipcert timer remove" deletes it.`
	const pkg = `# Shipped (disabled) by the ipcert package; "ipcert timer install" or "systemctl enable --now ipcert-renew.timer" turns it on.`
	return bytes.Replace(svc, []byte(ours), []byte(pkg), 1), bytes.Replace(tmr, []byte(ours), []byte(pkg), 1), nil
}

// packaged says the package's units can serve o: the live systemd, the
// default unit folder, the packaged binary and state directory.
func (o *TimerOptions) packaged() bool {
	_, err := os.Stat(filepath.Join(o.Root, PackagedUnitDir, TimerTimerName))
	return err == nil && o.liveSystemd() && o.Config.Binary == PackagedBinary && filepath.Clean(o.Config.StateDir) == PackagedStateDir
}

// TimerInstall writes the job's files and, for the running systemd,
// reloads it and enables the timer. Where the Debian package's units
// serve (packaged), it writes no second copy: only a drop-in for the web
// roots to write, and it enables the packaged timer.
func TimerInstall(ctx context.Context, o TimerOptions) (TimerResult, error) {
	o.defaults()
	res := TimerResult{Mode: o.Mode}
	if err := TimerCheckBinary(o.Config.Binary); err != nil {
		return res, err
	}
	var files map[string][]byte
	switch {
	case o.Mode == TimerSystemd && o.packaged():
		dropIn := filepath.Join(o.UnitDir, TimerServiceName+".d", webrootsDropIn)
		files = map[string][]byte{}
		if len(o.Config.WritablePaths) > 0 {
			if err := o.Config.check(); err != nil {
				return res, err
			}
			files[dropIn] = []byte("# Written by \"ipcert timer install\": the web roots renew writes challenge files into.\n[Service]\nReadWritePaths=" + strings.Join(o.Config.WritablePaths, " ") + "\n")
		} else if _, err := os.Stat(dropIn); err == nil {
			_ = os.Remove(dropIn)
		}
		// A copy an earlier install wrote would shadow the packaged units.
		for _, n := range []string{TimerServiceName, TimerTimerName} {
			p := filepath.Join(o.UnitDir, n)
			if old, err := os.ReadFile(p); err == nil && bytes.HasPrefix(old, []byte("# Written by \"ipcert timer install\"")) {
				if err := os.Remove(p); err != nil {
					return res, err
				}
			}
		}
		res.Files = []string{filepath.Join(o.Root, PackagedUnitDir, TimerServiceName), filepath.Join(o.Root, PackagedUnitDir, TimerTimerName)}
	case o.Mode == TimerSystemd:
		svc, tmr, err := TimerUnits(o.Config)
		if err != nil {
			return res, err
		}
		files = map[string][]byte{filepath.Join(o.UnitDir, TimerServiceName): svc, filepath.Join(o.UnitDir, TimerTimerName): tmr}
	case o.Mode == TimerCron:
		path := filepath.Join(o.CronDir, TimerCronName)
		// Keep the minute of an existing entry: reinstalling must not move
		// the job around.
		if old, err := os.ReadFile(path); err == nil {
			if m, ok := timerCronMinute(old); ok && o.Config.Minute < 0 {
				o.Config.Minute = m
			}
		}
		line, err := TimerCronEntry(o.Config, o.Rand)
		if err != nil {
			return res, err
		}
		files = map[string][]byte{path: line}
	default:
		return res, fmt.Errorf("unknown timer mode %q; use systemd or cron", o.Mode)
	}
	changed := false
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if !slices.Contains(res.Files, path) {
			res.Files = append(res.Files, path)
		}
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, files[path]) {
			continue
		}
		changed = true
		if err := timerWriteFile(path, files[path]); err != nil {
			return res, err
		}
	}
	res.Unchanged = !changed
	if o.Mode == TimerSystemd && o.liveSystemd() {
		for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", TimerTimerName}} {
			c := Cmd{Path: "systemctl", Args: args}
			res.Commands = append(res.Commands, c.String())
			if out, err := o.Runner.Run(ctx, c); err != nil {
				return res, fmt.Errorf("%s: %v: %s", c, err, strings.TrimSpace(string(out)))
			}
		}
	}
	return res, nil
}

// TimerRemove disables the timer (running systemd) and deletes the files
// of both modes that exist.
func TimerRemove(ctx context.Context, o TimerOptions) (TimerResult, error) {
	o.defaults()
	res := TimerResult{Mode: o.Mode}
	if o.liveSystemd() {
		_, own := os.Stat(filepath.Join(o.UnitDir, TimerTimerName))
		_, pkg := os.Stat(filepath.Join(o.Root, PackagedUnitDir, TimerTimerName))
		if own == nil || pkg == nil {
			c := Cmd{Path: "systemctl", Args: []string{"disable", "--now", TimerTimerName}}
			res.Commands = append(res.Commands, c.String())
			if out, err := o.Runner.Run(ctx, c); err != nil {
				return res, fmt.Errorf("%s: %v: %s", c, err, strings.TrimSpace(string(out)))
			}
		}
	}
	for _, p := range []string{filepath.Join(o.UnitDir, TimerServiceName), filepath.Join(o.UnitDir, TimerTimerName),
		filepath.Join(o.UnitDir, TimerServiceName+".d", webrootsDropIn), filepath.Join(o.CronDir, TimerCronName)} {
		err := os.Remove(p)
		switch {
		case err == nil:
			res.Files = append(res.Files, p)
		case !errors.Is(err, os.ErrNotExist):
			return res, fmt.Errorf("remove %s: %w", p, err)
		}
	}
	res.Unchanged = len(res.Files) == 0
	if o.liveSystemd() && !res.Unchanged {
		c := Cmd{Path: "systemctl", Args: []string{"daemon-reload"}}
		res.Commands = append(res.Commands, c.String())
		if out, err := o.Runner.Run(ctx, c); err != nil {
			return res, fmt.Errorf("%s: %v: %s", c, err, strings.TrimSpace(string(out)))
		}
	}
	return res, nil
}

// TimerState is what "ipcert timer status" reports about the schedule.
type TimerState struct {
	Mode       TimerMode `json:"mode,omitempty"` // empty: not installed
	Files      []string  `json:"files,omitempty"`
	CronMinute int       `json:"cron_minute,omitempty"`
	// From systemd (running systemd only).
	Active      string `json:"active,omitempty"`       // the timer's ActiveState
	LastTrigger string `json:"last_trigger,omitempty"` // LastTriggerUSec
	NextRun     string `json:"next_run,omitempty"`     // NextElapseUSecRealtime
	LastResult  string `json:"last_result,omitempty"`  // the service's Result
	LastExit    string `json:"last_exit,omitempty"`    // ExecMainStatus
	LastExitAt  string `json:"last_exit_at,omitempty"` // ExecMainExitTimestamp
}

// TimerStatus finds the installed job and, under the running systemd,
// asks it when the timer last fired, when it fires next and how the last
// run ended.
func TimerStatus(ctx context.Context, o TimerOptions) (TimerState, error) {
	o.defaults()
	var st TimerState
	for _, p := range []string{filepath.Join(o.UnitDir, TimerServiceName), filepath.Join(o.UnitDir, TimerTimerName)} {
		if _, err := os.Stat(p); err == nil {
			st.Mode = TimerSystemd
			st.Files = append(st.Files, p)
		}
	}
	if st.Mode == "" && o.liveSystemd() {
		// The package's units count once enabled (shipped disabled).
		pkgTimer := filepath.Join(o.Root, PackagedUnitDir, TimerTimerName)
		if _, err := os.Stat(pkgTimer); err == nil {
			if out, err := o.Runner.Run(ctx, Cmd{Path: "systemctl", Args: []string{"is-enabled", TimerTimerName}}); err == nil && strings.TrimSpace(string(out)) == "enabled" {
				st.Mode = TimerSystemd
				st.Files = append(st.Files, filepath.Join(o.Root, PackagedUnitDir, TimerServiceName), pkgTimer)
			}
		}
	}
	cron := filepath.Join(o.CronDir, TimerCronName)
	if data, err := os.ReadFile(cron); err == nil {
		if st.Mode == "" {
			st.Mode = TimerCron
		}
		st.Files = append(st.Files, cron)
		st.CronMinute, _ = timerCronMinute(data)
	}
	if st.Mode != TimerSystemd || !o.liveSystemd() {
		return st, nil
	}
	props, err := timerShow(ctx, o.Runner, TimerTimerName, "ActiveState", "LastTriggerUSec", "NextElapseUSecRealtime")
	if err != nil {
		return st, err
	}
	st.Active, st.LastTrigger, st.NextRun = props["ActiveState"], props["LastTriggerUSec"], props["NextElapseUSecRealtime"]
	props, err = timerShow(ctx, o.Runner, TimerServiceName, "Result", "ExecMainStatus", "ExecMainExitTimestamp")
	if err != nil {
		return st, err
	}
	st.LastResult, st.LastExit, st.LastExitAt = props["Result"], props["ExecMainStatus"], props["ExecMainExitTimestamp"]
	return st, nil
}

func timerShow(ctx context.Context, r Runner, unit string, props ...string) (map[string]string, error) {
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	c := Cmd{Path: "systemctl", Args: args}
	out, err := r.Run(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", c, err, strings.TrimSpace(string(out)))
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// timerCronMinute reads the minute field of our cron line.
func timerCronMinute(data []byte) (int, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "=") {
			continue
		}
		var m int
		if _, err := fmt.Sscanf(f[0], "%d", &m); err == nil && m >= 0 && m < 60 {
			return m, true
		}
	}
	return 0, false
}

// timerWriteFile writes a unit file or cron.d entry: public configuration
// (0644; cron refuses group- or world-writable files), making its folder
// when missing. What root runs is written only where nobody but root can
// change it (safefs's strict walk, no link of another user followed).
func timerWriteFile(path string, data []byte) error {
	return safefs.WriteFile(path, data, 0o644, -1, safefs.WriteOptions{Strict: true, Create: true})
}
