package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// CertPaths are the files of a certificate, through its current link, as
// deploy hooks see them in their environment.
type CertPaths struct {
	Name        string
	Identifiers []string
	Dir         string // certs/<name>/current
	Cert        string
	Chain       string
	FullChain   string
	Key         string
	Combined    string // empty when the version has no combined.pem
}

// CertPathsIn is the paths inside dir (a current link or a version).
func CertPathsIn(name string, identifiers []string, dir string) CertPaths {
	p := CertPaths{
		Name: name, Identifiers: identifiers, Dir: dir,
		Cert: filepath.Join(dir, store.CertFile), Chain: filepath.Join(dir, store.ChainFile),
		FullChain: filepath.Join(dir, store.FullChainFile), Key: filepath.Join(dir, store.KeyFile),
	}
	if _, err := os.Stat(filepath.Join(dir, store.CombinedFile)); err == nil {
		p.Combined = filepath.Join(dir, store.CombinedFile)
	}
	return p
}

// Environ is the environment a hook gets: IPCERT_NAME, IPCERT_DIR,
// IPCERT_CERT, IPCERT_CHAIN, IPCERT_FULLCHAIN, IPCERT_KEY,
// IPCERT_COMBINED (when kept) and IPCERT_IDENTIFIERS (space-separated).
func (p CertPaths) Environ() []string {
	env := []string{
		"IPCERT_NAME=" + p.Name,
		"IPCERT_IDENTIFIERS=" + strings.Join(p.Identifiers, " "),
		"IPCERT_DIR=" + p.Dir,
		"IPCERT_CERT=" + p.Cert,
		"IPCERT_CHAIN=" + p.Chain,
		"IPCERT_FULLCHAIN=" + p.FullChain,
		"IPCERT_KEY=" + p.Key,
	}
	if p.Combined != "" {
		env = append(env, "IPCERT_COMBINED="+p.Combined)
	}
	return env
}

// HookSpec is what to run after a new certificate became current.
type HookSpec struct {
	// Commands are the user's hooks (renewal.json deploy_hooks), each run
	// with sh -c, in order.
	Commands []string
	// Reload, when its Path is set, reloads the web server (Layout.ReloadCmd
	// of the detected server); it runs after the commands, so a hook that
	// copies files elsewhere is done before the server reads them.
	Reload Cmd
	// Timeout bounds each command; default DefaultHookTimeout.
	Timeout time.Duration
	// Runner runs them; default ExecRunner.
	Runner Runner
	// Shell runs Commands; default /bin/sh.
	Shell string
}

// DefaultHookTimeout is long enough for a reload of a busy server, short
// enough that a hung hook cannot hold the renewal lock for long.
const DefaultHookTimeout = 2 * time.Minute

// HookResult is one command's outcome, for the log and renewal.json.
type HookResult struct {
	Command  string        `json:"command"`
	Output   string        `json:"output,omitempty"`
	Err      error         `json:"-"`
	Error    string        `json:"error,omitempty"`
	TimedOut bool          `json:"timed_out,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// OK says the command succeeded.
func (r HookResult) OK() bool { return r.Err == nil }

// RunHooks runs every command, then the reload, each with the timeout and
// the certificate's paths in the environment, and returns one result per
// command. A failing hook does not stop the next: the certificate is
// already current, and the reload is what puts it in service.
func RunHooks(ctx context.Context, spec HookSpec, paths CertPaths) []HookResult {
	run := spec.Runner
	if run == nil {
		run = ExecRunner{}
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	shell := spec.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	env := paths.Environ()
	// A step is a program to run, or a built-in hook (CopyHook) done here.
	type step struct {
		cmd     Cmd
		builtin string
	}
	var steps []step
	for _, c := range spec.Commands {
		if strings.TrimSpace(c) == "" {
			continue
		}
		if strings.HasPrefix(c, CopyHookPrefix) {
			steps = append(steps, step{builtin: c})
			continue
		}
		steps = append(steps, step{cmd: Cmd{Path: shell, Args: []string{"-c", c}, Env: env}})
	}
	if spec.Reload.Path != "" {
		r := spec.Reload
		r.Env = append(append([]string{}, r.Env...), env...)
		steps = append(steps, step{cmd: r})
	}
	var out []HookResult
	for _, st := range steps {
		c := st.cmd
		label := st.builtin
		if label == "" {
			label = hookLabel(c, shell)
		}
		if ctx.Err() != nil {
			out = append(out, HookResult{Command: label, Err: ctx.Err(), Error: "not run: " + ctx.Err().Error()})
			continue
		}
		if st.builtin != "" {
			start := time.Now()
			r := HookResult{Command: label}
			group, dir, format, _, err := parseCopyHook(st.builtin)
			if err == nil {
				_, err = CopyAs(paths, dir, group, format)
			}
			if err == nil {
				r.Output = fmt.Sprintf("copied %s to %s for group %s", strings.Join(CopyFiles(format, paths.Name), " and "), dir, group)
			}
			r.Err, r.Duration = err, time.Since(start)
			if err != nil {
				r.Error = err.Error()
			}
			out = append(out, r)
			continue
		}
		if err := CheckHookProgram(hookLabel(c, shell)); c.Path == shell && err != nil {
			out = append(out, HookResult{Command: hookLabel(c, shell), Err: err, Error: "not run: " + err.Error()})
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		b, err := run.Run(hctx, c)
		r := HookResult{Command: label, Output: string(b), Duration: time.Since(start)}
		if err != nil {
			if errors.Is(hctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				r.TimedOut = true
				err = fmt.Errorf("%s: did not finish within %s and was killed; make it faster or run the slow part in the background", r.Command, timeout)
			}
			r.Err = err
			r.Error = err.Error()
		}
		cancel()
		out = append(out, r)
	}
	return out
}

func hookLabel(c Cmd, shell string) string {
	if c.Path == shell && len(c.Args) == 2 && c.Args[0] == "-c" {
		return c.Args[1]
	}
	return c.String()
}

// ValidationHooks is acmeflow.Request.AroundValidation for --pre-hook and
// --post-hook: the pre commands run (in order, each with the timeout)
// right before the CA validates, and one that fails stops the order (a
// service still holding the port would fail validation anyway); the post
// commands run when validation is over, whether it succeeded or not.
// report receives one line per command run.
func ValidationHooks(pre, post []string, report func(string)) func(ctx context.Context) (func(), error) {
	if len(pre) == 0 && len(post) == 0 {
		return nil
	}
	say := func(when string, r HookResult) {
		if report == nil {
			return
		}
		if r.OK() {
			report(fmt.Sprintf("%s hook %s: ok", when, r.Command))
		} else {
			report(fmt.Sprintf("%s hook %s failed: %s", when, r.Command, r.Error))
		}
	}
	return func(ctx context.Context) (func(), error) {
		for _, r := range RunHooks(ctx, HookSpec{Commands: pre}, CertPaths{}) {
			say("pre", r)
			if !r.OK() {
				// The post commands still run: they undo what the pre
				// commands that succeeded did.
				runPost(post, say)
				return nil, fmt.Errorf("--pre-hook %s failed (%s): nothing was asked of the CA", r.Command, r.Error)
			}
		}
		return func() { runPost(post, say) }, nil
	}
}

func runPost(post []string, say func(string, HookResult)) {
	// Not under the order's context: a post hook restarts what a pre hook
	// stopped, also after an interrupt.
	ctx, cancel := context.WithTimeout(context.Background(), 2*DefaultHookTimeout)
	defer cancel()
	for _, r := range RunHooks(ctx, HookSpec{Commands: post}, CertPaths{}) {
		say("post", r)
	}
}
