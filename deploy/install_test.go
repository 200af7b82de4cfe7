package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// recRunner records every command and answers from fn (or runs it for
// real through next).
type recRunner struct {
	mu    sync.Mutex
	calls []Cmd
	fn    func(Cmd) ([]byte, error)
	next  Runner
}

func (r *recRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if r.fn != nil {
		return r.fn(c)
	}
	return r.next.Run(ctx, c)
}

func (r *recRunner) ran(path string, arg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.Path == path && (arg == "" || strings.Contains(strings.Join(c.Args, " "), arg)) {
			n++
		}
	}
	return n
}

func testSnippet(t *testing.T, certDir string, ids ...string) []byte {
	t.Helper()
	b, err := Snippet(Nginx, SnippetParams{Name: "t", Identifiers: ids, CertDir: certDir, WebRoot: "/var/www/html", HTTPSPort: 8443, HTTPPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeLayout(t *testing.T) Layout {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.conf")
	os.WriteFile(main, []byte("http {\n    include "+dir+"/conf.d/*.conf;\n}\n"), 0o644)
	return Layout{
		Kind: Nginx, ConfigPath: filepath.Join(dir, "conf.d", "ipcert-t.conf"),
		IncludeFile: main, IncludeBase: dir, IncludeLine: "include conf.d/*.conf;",
		Test: Cmd{Path: "test-config"}, Unit: "nginx",
	}
}

// TestInstallSteps drives Install with a recording runner: what is tested,
// written, reloaded and restored in each case.
func TestInstallSteps(t *testing.T) {
	ctx := context.Background()
	reload := Cmd{Path: "reload-server"}
	snip := testSnippet(t, "/state/certs/t/current", "127.0.0.1")

	t.Run("fresh install tests twice then reloads", func(t *testing.T) {
		l := fakeLayout(t)
		r := &recRunner{fn: func(Cmd) ([]byte, error) { return []byte("syntax is ok"), nil }}
		res, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed || !res.Tested || !res.Reloaded || res.Backup != "" || res.IncludeNeeded {
			t.Errorf("result %+v", res)
		}
		if r.ran("test-config", "") != 2 || r.ran("reload-server", "") != 1 || len(r.calls) != 3 || r.calls[2].Path != "reload-server" {
			t.Errorf("calls %v", r.calls)
		}
		if got, _ := os.ReadFile(l.ConfigPath); string(got) != string(snip) {
			t.Error("file not written")
		}
		// The same content again: unchanged, nothing run.
		r2 := &recRunner{fn: func(Cmd) ([]byte, error) { return nil, nil }}
		res, err = Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r2})
		if err != nil || res.Changed || len(r2.calls) != 0 {
			t.Errorf("second install: %+v %v calls %v", res, err, r2.calls)
		}
	})

	t.Run("test fails after writing: previous file restored, no reload", func(t *testing.T) {
		l := fakeLayout(t)
		os.MkdirAll(filepath.Dir(l.ConfigPath), 0o755)
		old := testSnippet(t, "/state/certs/t/current", "127.0.0.2")
		os.WriteFile(l.ConfigPath, old, 0o644)
		n := 0
		r := &recRunner{fn: func(c Cmd) ([]byte, error) {
			n++
			if n == 2 {
				return []byte("emerg: duplicate listen"), errors.New("exit status 1")
			}
			return nil, nil
		}}
		backups := t.TempDir()
		res, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: backups, Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "duplicate listen") || !strings.Contains(err.Error(), "previous file was restored") {
			t.Fatalf("error %v", err)
		}
		if !res.RolledBack || res.Reloaded || r.ran("reload-server", "") != 0 {
			t.Errorf("result %+v calls %v", res, r.calls)
		}
		if got, _ := os.ReadFile(l.ConfigPath); string(got) != string(old) {
			t.Error("previous file not restored")
		}
		if b, _ := os.ReadFile(res.Backup); string(b) != string(old) {
			t.Errorf("backup %s does not hold the previous file", res.Backup)
		}
	})

	t.Run("reload fails: previous file restored, the reload run again with it", func(t *testing.T) {
		l := fakeLayout(t)
		os.MkdirAll(filepath.Dir(l.ConfigPath), 0o755)
		old := testSnippet(t, "/state/certs/t/current", "127.0.0.2")
		os.WriteFile(l.ConfigPath, old, 0o644)
		reloads := 0
		var seen []string
		r := &recRunner{fn: func(c Cmd) ([]byte, error) {
			if c.Path != "reload-server" {
				return nil, nil
			}
			reloads++
			b, _ := os.ReadFile(l.ConfigPath)
			seen = append(seen, string(b))
			if reloads == 1 {
				return []byte("bind: cannot assign requested address"), errors.New("exit status 1")
			}
			return nil, nil
		}}
		res, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "cannot assign requested address") || !strings.Contains(err.Error(), "previous config was restored and reload-server ran again with it") {
			t.Fatalf("error %v", err)
		}
		if !res.RolledBack || res.Reloaded || reloads != 2 || seen[0] != string(snip) || seen[1] != string(old) {
			t.Errorf("result %+v, %d reloads", res, reloads)
		}
		if got, _ := os.ReadFile(l.ConfigPath); string(got) != string(old) {
			t.Error("previous file not restored")
		}
	})

	t.Run("test fails on a new file: file and link removed", func(t *testing.T) {
		l := fakeLayout(t)
		l.EnableLink = filepath.Join(filepath.Dir(l.IncludeFile), "enabled.conf")
		n := 0
		r := &recRunner{fn: func(c Cmd) ([]byte, error) {
			n++
			if n == 2 {
				return []byte("bad"), errors.New("exit status 1")
			}
			return nil, nil
		}}
		_, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "new file was removed") {
			t.Fatalf("error %v", err)
		}
		for _, p := range []string{l.ConfigPath, l.EnableLink} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("%s left behind: %v", p, err)
			}
		}
	})

	t.Run("broken before: nothing written", func(t *testing.T) {
		l := fakeLayout(t)
		r := &recRunner{fn: func(c Cmd) ([]byte, error) { return []byte("unknown directive"), errors.New("exit status 1") }}
		_, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "already fails") || !strings.Contains(err.Error(), "unknown directive") {
			t.Fatalf("error %v", err)
		}
		if _, err := os.Stat(l.ConfigPath); !os.IsNotExist(err) {
			t.Error("file written although the config was broken before")
		}
		if len(r.calls) != 1 {
			t.Errorf("calls %v", r.calls)
		}
	})

	t.Run("missing module: nothing done, the fix named", func(t *testing.T) {
		l := fakeLayout(t)
		l.Requires, l.RequiresFix = []string{filepath.Join(t.TempDir(), "rewrite.load")}, "a2enmod ssl rewrite"
		r := &recRunner{fn: func(Cmd) ([]byte, error) { return nil, nil }}
		_, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "run: a2enmod ssl rewrite") || len(r.calls) != 0 {
			t.Fatalf("error %v calls %v", err, r.calls)
		}
	})

	t.Run("foreign file is never replaced", func(t *testing.T) {
		l := fakeLayout(t)
		os.MkdirAll(filepath.Dir(l.ConfigPath), 0o755)
		os.WriteFile(l.ConfigPath, []byte("server { listen 80; }\n"), 0o644)
		r := &recRunner{fn: func(Cmd) ([]byte, error) { return nil, nil }}
		_, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err == nil || !strings.Contains(err.Error(), "not written by ipcert") || len(r.calls) != 0 {
			t.Fatalf("error %v calls %v", err, r.calls)
		}
		if got, _ := os.ReadFile(l.ConfigPath); string(got) != "server { listen 80; }\n" {
			t.Error("foreign file changed")
		}
	})

	t.Run("not included: installed and tested, the line to add is named, no reload", func(t *testing.T) {
		l := fakeLayout(t)
		os.WriteFile(l.IncludeFile, []byte("http {\n    include /elsewhere/*.conf;\n    # include conf.d/*.conf;\n}\n"), 0o644)
		r := &recRunner{fn: func(Cmd) ([]byte, error) { return nil, nil }}
		res, err := Install(ctx, Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), Reload: reload, Runner: r})
		if err != nil || !res.IncludeNeeded || res.IncludeLine != l.IncludeLine || res.IncludeFile != l.IncludeFile || res.Reloaded || r.ran("reload-server", "") != 0 {
			t.Fatalf("%+v %v", res, err)
		}
	})
}

func TestIncludes(t *testing.T) {
	for _, c := range []struct {
		conf, base, target string
		want               bool
	}{
		{"http {\n include /etc/nginx/conf.d/*.conf;\n}", "/etc/nginx", "/etc/nginx/conf.d/ipcert-x.conf", true},
		{"#include /etc/nginx/conf.d/*.conf;", "/etc/nginx", "/etc/nginx/conf.d/ipcert-x.conf", false},
		{"IncludeOptional sites-enabled/*.conf", "/etc/apache2", "/etc/apache2/sites-enabled/ipcert-x.conf", true},
		{"IncludeOptional conf-enabled/*.conf", "/etc/apache2", "/etc/apache2/sites-enabled/ipcert-x.conf", false},
		{`EXTRAOPTS="-S /run/haproxy-master.sock -f /etc/haproxy/ipcert.d"`, "/etc/haproxy", "/etc/haproxy/ipcert.d/x.cfg", true},
		{`EXTRAOPTS="-f /etc/haproxy/other.d"`, "/etc/haproxy", "/etc/haproxy/ipcert.d/x.cfg", false},
		{`#CONFIG="/etc/haproxy/haproxy.cfg"`, "/etc/haproxy", "/etc/haproxy/ipcert.d/x.cfg", false},
		{"import /etc/caddy/ipcert-*.caddy", "/etc/caddy", "/etc/caddy/ipcert-x.caddy", true},
		{`include-toplevel: "/etc/unbound/unbound.conf.d/*.conf"`, "/etc/unbound", "/etc/unbound/unbound.conf.d/ipcert-x.conf", true},
		{`include: "/etc/unbound/unbound.conf.d/ipcert-x.conf"`, "/etc/unbound", "/etc/unbound/unbound.conf.d/ipcert-x.conf", true},
		{`includeDirectory("/etc/dnsdist/conf.d")`, "/etc/dnsdist", "/etc/dnsdist/conf.d/ipcert-x.conf", true},
		{`-- includeDirectory("/etc/dnsdist/conf.d")`, "/etc/dnsdist", "/etc/dnsdist/conf.d/ipcert-x.conf", false},
		{`dofile('/etc/knot-resolver/ipcert-x.lua')`, "/etc/knot-resolver", "/etc/knot-resolver/ipcert-x.lua", true},
		{`include "/etc/lighttpd/conf-enabled/*.conf"`, "/etc/lighttpd", "/etc/lighttpd/conf-enabled/90-ipcert-x.conf", true},
	} {
		if got := includes([]byte(c.conf), c.base, c.target); got != c.want {
			t.Errorf("includes(%q, %s) = %v", c.conf, c.target, got)
		}
	}
}

// TestInstallRealNginx runs Install against a real nginx: a good snippet is
// tested, installed and reloaded (the running server then serves the
// certificate); a config that is broken before is refused untouched; an
// existing config that only breaks together with the new snippet makes the
// test fail, the previous ipcert file comes back byte for byte and nothing
// is reloaded (the server keeps serving the old certificate).
func TestInstallRealNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	s := nginxServer(t)
	ti := newIssuer(t)
	idents := mustAddrs("127.0.0.1")
	name := "real"
	first := ti.issue(t, name, idents, false)
	httpsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	snippetFor := func(port int) []byte {
		b, err := Snippet(Nginx, SnippetParams{Name: name, Identifiers: []string{"127.0.0.1"}, CertDir: ti.eng.Store.CurrentDir(name), WebRoot: t.TempDir(), HTTPSPort: port, HTTPPort: httpPort})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	l := Layout{
		Kind: Nginx, ConfigPath: s.snip, IncludeFile: s.conf, IncludeBase: s.prefix,
		IncludeLine: "include conf.d/*.conf;", Test: s.test, Unit: "nginx",
	}
	rec := &recRunner{next: ExecRunner{}}
	backups := t.TempDir()

	// Start nginx with an empty conf.d, then install: tested and reloaded.
	startServer(t, s.log, s.env, s.start[0], s.start[1:]...)
	waitFile(t, filepath.Join(s.prefix, "nginx.pid"))
	good := snippetFor(httpsPort)
	res, err := Install(context.Background(), Installer{Layout: l, Content: good, BackupDir: backups, Reload: s.reload.Reload, Runner: rec})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reloaded || !res.Tested || res.IncludeNeeded {
		t.Fatalf("%+v", res)
	}
	addr := hostPort(idents[0], httpsPort)
	opts := VerifyOptions{Roots: ti.roots, Expected: first.Version.Leaf}
	waitVerify(t, addr, opts, func(r VerifyResult) bool { return r.Outcome == Match }, s.log)

	// A second version becomes current, and the next snippet moves HTTPS
	// to another port, where an existing server of the user's is the
	// default server: two defaults on one address:port, so nginx -t fails,
	// though each config is fine alone.
	second := ti.issue(t, name, idents, false)
	newPort := testkit.FreePort(t)
	other := filepath.Join(filepath.Dir(s.snip), "aaa-other.conf")
	if err := os.WriteFile(other, []byte(fmt.Sprintf("server {\n    listen 127.0.0.1:%d default_server;\n}\n", newPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	rec.calls = nil
	changed := snippetFor(newPort)
	res, err = Install(context.Background(), Installer{Layout: l, Content: changed, BackupDir: backups, Reload: s.reload.Reload, Runner: rec})
	if err == nil || !strings.Contains(err.Error(), "duplicate default server") || !strings.Contains(err.Error(), "previous file was restored") {
		t.Fatalf("want a failed config test naming the conflict, got %v", err)
	}
	if !res.RolledBack || res.Reloaded || rec.ran(s.start[0], "reload") != 0 || len(rec.calls) != 2 {
		t.Fatalf("rolled back %v, reloaded %v, calls %v", res.RolledBack, res.Reloaded, rec.calls)
	}
	if got, _ := os.ReadFile(s.snip); string(got) != string(good) {
		t.Fatal("the previous snippet was not restored byte for byte")
	}
	if out, err := (ExecRunner{}).Run(context.Background(), s.test); err != nil {
		t.Fatalf("after the rollback the config must pass its test again: %v\n%s", err, out)
	}
	// Nothing reloaded: the server still serves the first certificate,
	// although current already names the second.
	if r, _ := Verify(context.Background(), addr, opts); r.Outcome != Match {
		t.Fatalf("after the failed install: %s (%s)", r.Outcome, r.Reason)
	}
	os.Remove(other)

	// A config broken before ipcert touches it: refused, nothing written.
	broken := filepath.Join(filepath.Dir(s.snip), "zzz-broken.conf")
	os.WriteFile(broken, []byte("this is not nginx;\n"), 0o644)
	rec.calls = nil
	_, err = Install(context.Background(), Installer{Layout: l, Content: changed, BackupDir: backups, Reload: s.reload.Reload, Runner: rec})
	if err == nil || !strings.Contains(err.Error(), "already fails") || !strings.Contains(err.Error(), "unknown directive") {
		t.Fatalf("broken config: %v", err)
	}
	if got, _ := os.ReadFile(s.snip); string(got) != string(good) || len(rec.calls) != 1 {
		t.Fatalf("changed something on a broken config; calls %v", rec.calls)
	}
	os.Remove(broken)

	// Fixed: the changed snippet goes in, with a backup of the previous
	// one, and the reload serves the second certificate on the new port.
	res, err = Install(context.Background(), Installer{Layout: l, Content: changed, BackupDir: backups, Reload: s.reload.Reload, Runner: rec})
	if err != nil || !res.Reloaded || res.Backup == "" {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := os.ReadFile(res.Backup); string(b) != string(good) {
		t.Error("backup does not hold the previous snippet")
	}
	opts.Expected = second.Version.Leaf
	waitVerify(t, hostPort(idents[0], newPort), opts, func(r VerifyResult) bool { return r.Outcome == Match }, s.log)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInstallEnablesApacheModules: on a copy of Debian's /etc/apache2
// (APACHE_CONFDIR, which a2enmod and apache2ctl honour), the snippet needs
// mod_ssl, which Debian's default lacks. Without EnableModules Install
// refuses and names a2enmod; with it, Install enables it itself and the
// config test passes; when the test then fails, the module is turned off
// again with the rollback.
func TestInstallEnablesApacheModules(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	testkit.NeedProgram(t, "a2enmod", "apache2")
	testkit.NeedProgram(t, "apache2ctl", "apache2")
	_, err := os.Stat("/etc/apache2/apache2.conf")
	testkit.Need(t, err == nil, "no Debian /etc/apache2 (apt-get install -y apache2)")
	conf := filepath.Join(t.TempDir(), "apache2")
	if out, err := (ExecRunner{}).Run(context.Background(), Cmd{Path: "cp", Args: []string{"-a", "/etc/apache2", conf}}); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// Debian's default, whatever this host enabled since.
	for _, m := range []string{"ssl", "rewrite"} {
		os.Remove(filepath.Join(conf, "mods-enabled", m+".load"))
		os.Remove(filepath.Join(conf, "mods-enabled", m+".conf"))
	}
	env := []string{"APACHE_CONFDIR=" + conf}
	deb := LayoutFor(Apache, Debian, "t")
	l := Layout{Kind: Apache, ConfigPath: filepath.Join(conf, "sites-available", "ipcert-t.conf"), EnableLink: filepath.Join(conf, "sites-enabled", "ipcert-t.conf"),
		Test:          Cmd{Path: "apache2ctl", Args: []string{"-t"}, Env: env},
		EnableModules: Cmd{Path: deb.EnableModules.Path, Args: deb.EnableModules.Args, Env: env}, DisableModules: Cmd{Path: deb.DisableModules.Path, Args: deb.DisableModules.Args, Env: env},
		RequiresFix: deb.RequiresFix}
	for _, f := range deb.Requires {
		l.Requires = append(l.Requires, filepath.Join(conf, "mods-enabled", filepath.Base(f)))
	}
	snip, err := Snippet(Apache, SnippetParams{Name: "t", Identifiers: []string{"127.0.0.1"}, CertDir: "/nonexistent", HTTPSPort: 18443, HTTPPort: 18080})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Install(context.Background(), Installer{Layout: l, Content: snip, BackupDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "a2enmod ssl") {
		t.Fatalf("without EnableModules: want a refusal naming a2enmod, got %v", err)
	}
	// The certificate files do not exist: apache2ctl -t fails on them,
	// after the module was enabled; the rollback turns it off again.
	res, err := Install(context.Background(), Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), EnableModules: true})
	if err == nil || !res.RolledBack || !strings.Contains(err.Error(), "SSLCertificateFile") {
		t.Fatalf("missing certificate files: want a rolled-back failure, got %v %+v", err, res)
	}
	if _, err := os.Lstat(filepath.Join(conf, "mods-enabled", "ssl.load")); err == nil {
		t.Error("the rollback left mod_ssl enabled")
	}
	// With real files it goes in, with mod_ssl enabled by Install.
	ti := newIssuer(t)
	ti.issue(t, "t", mustAddrs("127.0.0.1"), false)
	snip, _ = Snippet(Apache, SnippetParams{Name: "t", Identifiers: []string{"127.0.0.1"}, CertDir: ti.eng.Store.CurrentDir("t"), HTTPSPort: 18443, HTTPPort: 18080})
	res, err = Install(context.Background(), Installer{Layout: l, Content: snip, BackupDir: t.TempDir(), EnableModules: true})
	if err != nil || !res.Tested || strings.Join(res.ModulesEnabled, " ") != "ssl" {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := os.Stat(filepath.Join(conf, "mods-enabled", "ssl.load")); err != nil {
		t.Errorf("mod_ssl not enabled: %v", err)
	}
}

// TestInstallEscapesProgramOutput: what a config test prints is shown
// escaped (a path or name in it may carry terminal escapes).
func TestInstallEscapesProgramOutput(t *testing.T) {
	l := fakeLayout(t)
	n := 0
	r := &recRunner{fn: func(c Cmd) ([]byte, error) {
		n++
		if n == 2 {
			return []byte("bad \x1b]0;owned\x07 line"), errors.New("exit status 1")
		}
		return nil, nil
	}}
	res, err := Install(context.Background(), Installer{Layout: l, Content: testSnippet(t, "/state/certs/t/current", "127.0.0.2"), BackupDir: t.TempDir(), Runner: r})
	if err == nil || strings.ContainsRune(err.Error(), 0x1b) || strings.ContainsRune(res.TestOutput, 0x07) || !strings.Contains(res.TestOutput, `\x1b`) {
		t.Errorf("%q / %q", err, res.TestOutput)
	}
}
