package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// Every flag is checked before anything is written or sent (issue 12):
// a refused command leaves no state directory, no debug log and no ACME
// traffic behind. Each command has one function here, called at the top
// of its run function; they only read.

// validateIssueFlags checks what `ipcert issue` was given. It returns the
// problem as a usage error (exit 2), or nil.
func validateIssueFlags(fs *flag.FlagSet, f *issueFlags, s stdio) error {
	if err := issueFlagsError(fs, f); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

func issueFlagsError(fs *flag.FlagSet, f *issueFlags) error {
	if err := noNegativeFlags(fs); err != nil {
		return err
	}
	// The issuance's settings: the one validation the wizard's answers
	// and renewal.json go through too (internal/spec).
	if err := f.iss.Check(); err != nil {
		return err
	}
	if len(f.ips) == 0 {
		return errors.New("--ip is required: the address to certify (or --ip auto for this machine's public address)")
	}
	var idents []netip.Addr
	autos := 0
	for _, v := range f.ips {
		if v == "auto" {
			if autos++; autos > 1 {
				return errors.New("--ip auto is given twice")
			}
			continue
		}
		a, err := acmeflow.ParseIP(v)
		if err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
		idents = append(idents, a)
	}
	// The engine's own checks (duplicates, at most 25, the CA's address
	// policy), before the CA is even opened.
	if err := acmeflow.CheckOrder(idents, f.iss.CA.Public(), f.iss.Challenge, f.iss.WebRoot, f.iss.KeyType); err != nil {
		return userError(err)
	}
	if f.iss.EABHMACFile != "" {
		if err := checkSecretFile(f.iss.EABHMACFile); err != nil {
			return fmt.Errorf("--eab-hmac-file: %v", err)
		}
	}
	if f.name != "" {
		if err := store.ValidName(f.name); err != nil {
			return fmt.Errorf("--name: %v", err)
		}
	}
	if f.iss.Reload != "" {
		if _, err := deploy.ParseKind(f.iss.Reload); err != nil {
			return fmt.Errorf("--reload: %v", err)
		}
	}
	if f.iss.VerifyAddr != "" {
		if _, err := deploy.ParseTarget(f.iss.VerifyAddr, 443); err != nil {
			return fmt.Errorf("--verify: %v", err)
		}
	}
	for _, l := range []struct {
		flag  string
		hooks []string
	}{{"--deploy-hook", f.iss.DeployHooks}, {"--pre-hook", f.iss.PreHooks}, {"--post-hook", f.iss.PostHooks}} {
		// Every hook runs as root, at every renewal.
		for _, h := range l.hooks {
			if err := validateHookFlag(l.flag, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateRenewFlags checks what `ipcert renew` was given, including that
// every NAME is a managed certificate, without creating the state
// directory.
func validateRenewFlags(fs *flag.FlagSet, cf *commonFlags, s stdio) error {
	err := noNegativeFlags(fs)
	if err == nil {
		root := cf.stateDir
		if root == "" {
			root = store.DefaultRoot(s.Env, os.Getuid())
		}
		for _, n := range fs.Args() {
			if err = store.ValidName(n); err != nil {
				break
			}
			if _, serr := os.Stat(filepath.Join(root, "certs", n, "renewal.json")); serr != nil {
				err = fmt.Errorf("no certificate named %q in %s (ipcert status lists them)", n, root)
				break
			}
		}
	}
	if err != nil {
		return usageErr("%v", err)
	}
	return nil
}

// noNegativeFlags refuses a negative number or duration in any flag: none
// of ipcert's means anything below zero (a negative --timeout used to be
// taken as "no timeout").
func noNegativeFlags(fs *flag.FlagSet) error {
	var bad error
	fs.VisitAll(func(fl *flag.Flag) {
		g, ok := fl.Value.(flag.Getter)
		if !ok || bad != nil {
			return
		}
		switch v := g.Get().(type) {
		case time.Duration:
			if v < 0 {
				bad = fmt.Errorf("--%s %s is negative; give a duration such as 90s or 10m", fl.Name, v)
			}
		case int:
			if v < 0 {
				bad = fmt.Errorf("--%s %d is negative", fl.Name, v)
			}
		case int64:
			if v < 0 {
				bad = fmt.Errorf("--%s %d is negative", fl.Name, v)
			}
		}
	})
	return bad
}

// validateCA checks --ca without opening it (internal/spec, the rule the
// wizard and cachoice use too), and says whether Let's Encrypt's address
// policy applies.
func validateCA(ca string) (public bool, err error) {
	c := spec.CAChoice(ca)
	if _, err := c.Kind(); err != nil {
		return false, fmt.Errorf("--ca: %w", err)
	}
	return c.Public(), nil
}

// validateListen checks ADDR:PORT of a built-in responder.
func validateListen(v string) error { return spec.Listen(v) }

// validateEmail checks --email (internal/spec's rule, the wizard's too).
func validateEmail(e string) error {
	if err := spec.Email(e); err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	return nil
}

// validateHookFlag refuses an empty hook and, when run as root, a hook
// whose program is a file another user could change: renew runs every
// hook (--deploy-hook, --pre-hook, --post-hook) as root.
func validateHookFlag(flag, h string) error {
	if strings.TrimSpace(h) == "" {
		return fmt.Errorf("%s is empty; give the shell command to run", flag)
	}
	if strings.ContainsAny(h, "\n\r\x00") {
		return fmt.Errorf("%s %q has a line break; give one command (or a script)", flag, h)
	}
	if err := deploy.CheckHookProgram(h); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}
