package boulder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Missing names the programs Boulder needs that this machine lacks, with
// the Debian packages that bring them, or "" when none is missing.
func Missing() string {
	need := map[string]string{
		"go": "golang (Go 1.26)", "gcc": "gcc", "mariadbd": "mariadb-server",
		"mariadb-install-db": "mariadb-server", "redis-server": "redis-server",
		"softhsm2-util": "softhsm2", "dnsmasq": "dnsmasq-base", "ip": "iproute2",
		"nft": "nftables", "setpriv": "util-linux",
	}
	var miss []string
	for prog, pkg := range need {
		if _, err := lookPath(prog); err != nil {
			miss = append(miss, fmt.Sprintf("%s (apt-get install -y %s)", prog, pkg))
		}
	}
	if _, err := os.Stat("/usr/lib/softhsm/libsofthsm2.so"); err != nil {
		miss = append(miss, "/usr/lib/softhsm/libsofthsm2.so (apt-get install -y softhsm2)")
	}
	if len(miss) == 0 {
		return ""
	}
	return strings.Join(sorted(miss), ", ")
}

// lookPath finds prog also in the sbin folders, which root's PATH may lack.
func lookPath(prog string) (string, error) {
	for _, p := range []string{prog, "/usr/sbin/" + prog, "/sbin/" + prog} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found", prog)
}

// Prepare builds what is missing from the cache and returns the install.
// A cold run builds Boulder (a few minutes on two cores), makes the PKI, the
// CA's keys and the database template; a warm one returns at once. Each
// part is marked done only when it is whole, so an interrupted run starts
// that part again.
func Prepare(ctx context.Context, log func(string)) (Install, error) {
	in := Install{Dir: CacheDir()}
	if m := Missing(); m != "" {
		return in, fmt.Errorf("boulder: missing %s", m)
	}
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return in, err
	}
	steps := []struct {
		name string
		run  func(context.Context, Install, func(string)) error
	}{
		{"build-" + Version, build},
		{"ipki", makeIPKI},
		{"webpki", makeWebPKI},
		{"db", makeDBTemplate},
	}
	for _, s := range steps {
		if _, err := os.Stat(in.stamp(s.name)); err == nil {
			continue
		}
		log("boulder: " + s.name + "...")
		start := time.Now()
		if err := s.run(ctx, in, log); err != nil {
			return in, fmt.Errorf("boulder: %s: %w", s.name, err)
		}
		if err := os.WriteFile(in.stamp(s.name), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			return in, err
		}
		log(fmt.Sprintf("boulder: %s done in %s", s.name, time.Since(start).Round(time.Second)))
	}
	return in, nil
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := out
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return out, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail)
	}
	return out, nil
}

// build downloads the pinned module from the module proxy and builds the
// three programs the tests run. The module zip has no vendor folder (hence
// -mod=mod); the PKCS#11 signer needs cgo.
func build(ctx context.Context, in Install, _ func(string)) error {
	tmp, err := os.MkdirTemp("", "boulder-dl")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out, err := run(ctx, tmp, []string{"GOFLAGS=-mod=mod", "GO111MODULE=on"}, "go", "mod", "download", "-json", Module+"@"+Version)
	if err != nil {
		return err
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %v %s", Module, Version, err, mod.Error)
	}
	if err := os.RemoveAll(in.src()); err != nil {
		return err
	}
	// The module cache is read-only: the build and the ceremonies work
	// in a copy.
	if _, err := run(ctx, "/", nil, "cp", "-r", mod.Dir, in.src()); err != nil {
		return err
	}
	if _, err := run(ctx, "/", nil, "chmod", "-R", "u+w", in.src()); err != nil {
		return err
	}
	_, err = run(ctx, in.src(), []string{"GOFLAGS=-mod=mod", "CGO_ENABLED=1"},
		"go", "build", "-trimpath", "-o", filepath.Join(in.Dir, "bin")+"/", "./cmd/boulder", "./cmd/ceremony", "./test/ct-test-srv")
	return err
}

// makeWebPKI makes the CA's roots and intermediates with Boulder's own
// ceremony tool, the keys in SoftHSM tokens kept in the cache, from the
// ceremony files in Boulder's test/certs (as its test/certs/webpki.go does).
func makeWebPKI(ctx context.Context, in Install, _ func(string)) error {
	tokens := filepath.Join(in.Dir, "tokens")
	if err := os.RemoveAll(tokens); err != nil {
		return err
	}
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(in.softhsmConf(), []byte(conf), 0o644); err != nil {
		return err
	}
	work := filepath.Join(in.Dir, "pkiwork")
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Join(work, "test", "certs", "webpki"), 0o755); err != nil {
		return err
	}
	env := []string{"SOFTHSM2_CONF=" + in.softhsmConf()}
	slot := func(label string) (string, error) {
		out, err := run(ctx, work, env, "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "5678")
		if err != nil {
			return "", err
		}
		m := regexp.MustCompile(`to slot (\d+)`).FindSubmatch(out)
		if m == nil {
			return "", fmt.Errorf("softhsm2-util named no slot: %s", out)
		}
		return string(m[1]), nil
	}
	ceremony := func(file string, vars map[string]string) error {
		text, err := os.ReadFile(filepath.Join(in.src(), "test", "certs", file))
		if err != nil {
			return err
		}
		tmpl, err := template.New(file).Parse(string(text))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, vars); err != nil {
			return err
		}
		cfg := filepath.Join(work, "ceremony.yaml")
		if err := os.WriteFile(cfg, b.Bytes(), 0o600); err != nil {
			return err
		}
		_, err = run(ctx, work, env, in.bin("ceremony"), "-config", cfg)
		return err
	}
	rootSlot := map[string]string{}
	for _, alg := range []string{"rsa", "ecdsa"} {
		s, err := slot("Root " + strings.ToUpper(alg))
		if err != nil {
			return err
		}
		rootSlot[alg] = s
		if err := ceremony("root-ceremony-"+alg+".yaml", map[string]string{"SlotID": s}); err != nil {
			return err
		}
	}
	for _, alg := range []string{"rsa", "ecdsa"} {
		for _, inst := range []string{"a", "b", "c"} {
			name := fmt.Sprintf("int %s %s", alg, inst)
			file := strings.ReplaceAll(name, " ", "-")
			s, err := slot(name)
			if err != nil {
				return err
			}
			if err := ceremony("intermediate-key-ceremony-"+alg+".yaml", map[string]string{"SlotID": s, "Label": name, "FileName": file}); err != nil {
				return err
			}
			if err := ceremony("intermediate-cert-ceremony-"+alg+".yaml", map[string]string{"SlotID": rootSlot[alg], "CommonName": name, "FileName": file}); err != nil {
				return err
			}
			if alg == "ecdsa" {
				if err := ceremony("intermediate-cert-ceremony-ecdsa-cross.yaml", map[string]string{"SlotID": rootSlot["rsa"], "CommonName": name, "FileName": file}); err != nil {
					return err
				}
			}
		}
	}
	dst := filepath.Join(in.certs(), "webpki")
	_ = os.RemoveAll(dst)
	if err := os.MkdirAll(in.certs(), 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(work, "test", "certs", "webpki"), dst); err != nil {
		return err
	}
	return os.RemoveAll(work)
}

// makeDBTemplate initialises a MariaDB data folder with Boulder's schema
// and users (sa/db, in the order its container loads them); each Start
// copies it.
func makeDBTemplate(ctx context.Context, in Install, _ func(string)) error {
	tmp := in.dbTemplate() + ".tmp"
	_ = os.RemoveAll(tmp)
	if _, err := run(ctx, "/", nil, mustLook("mariadb-install-db"), "--no-defaults", "--datadir="+tmp, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db"); err != nil {
		return err
	}
	sock := filepath.Join(in.Dir, "mysql-init.sock")
	srv := exec.CommandContext(ctx, mustLook("mariadbd"), "--no-defaults", "--datadir="+tmp, "--socket="+sock,
		"--skip-networking", "--user=root", "--pid-file="+filepath.Join(in.Dir, "mysql-init.pid"))
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := run(ctx, "/", nil, "mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e", "SELECT 1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd did not answer in 60 s:\n%s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	files, err := filepath.Glob(filepath.Join(in.src(), "sa", "db", "*.sql"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no schema in %s: %v", filepath.Join(in.src(), "sa", "db"), err)
	}
	for _, f := range sorted(files) { // 00-create, 01-schemas, 02-users
		sql, err := os.Open(f)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "-S", sock, "-u", "root")
		cmd.Stdin = sql
		out, err := cmd.CombinedOutput()
		sql.Close()
		if err != nil {
			return fmt.Errorf("loading %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
	if _, err := run(ctx, "/", nil, "mariadb-admin", "--no-defaults", "-S", sock, "-u", "root", "shutdown"); err != nil {
		return err
	}
	stopped = true
	if err := srv.Wait(); err != nil {
		// a clean shutdown exits 0; anything else leaves a suspect folder
		return fmt.Errorf("mariadbd: %v\n%s", err, log.String())
	}
	_ = os.RemoveAll(in.dbTemplate())
	return os.Rename(tmp, in.dbTemplate())
}

func mustLook(prog string) string {
	p, err := lookPath(prog)
	if err != nil {
		return prog
	}
	return p
}
