package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ipcert/ipcert/diagnosis"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
)

// CACheck is doctor's re-check of a failure at the CA (its name did not
// resolve, it refused, TLS to it failed, it timed out): exactly those
// steps again, in order, each with what it found.
type CACheck struct {
	CA        spec.CAChoice `json:"ca"`
	Directory string        `json:"directory"`
	Steps     []CAStep      `json:"steps"`
	OK        bool          `json:"ok"`
	Time      time.Time     `json:"time"`
}

// CAStep is one step of CACheck: resolve, connect, directory.
type CAStep struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// caCodes are the diagnoses of a failure at the CA that CheckCA re-checks.
var caCodes = map[string]bool{diagnosis.DiagCADNS: true, diagnosis.DiagCARefused: true, diagnosis.DiagCATLS: true, diagnosis.DiagCATimeout: true, diagnosis.DiagCAUnreachable: true}

// IsCAFailure says the diagnosis code is a failure at the CA.
func IsCAFailure(code string) bool { return caCodes[code] }

// CAEndpoints are how CheckCA reaches a CA: the name resolver and the
// HTTP client (nil: the system's; tests pass loopback ones).
type CAEndpoints struct {
	LookupHost func(ctx context.Context, host string) ([]string, error)
	Dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	Client     *http.Client
}

// CheckCA resolves the name of the CA's directory URL, connects to it and
// fetches the directory, each step bounded; it stops at the first that
// fails. choice is the CA as the failure recorded it (staging,
// production or a URL) and root its --ca-root.
func CheckCA(ctx context.Context, choice spec.CAChoice, root string, ep CAEndpoints) CACheck {
	out := CACheck{CA: choice, Time: time.Now().UTC()}
	step := func(name string, ok bool, format string, args ...any) bool {
		out.Steps = append(out.Steps, CAStep{Name: name, OK: ok, Detail: acmeflow.Printable(fmt.Sprintf(format, args...))})
		return ok
	}
	if choice == "" || choice == cachoice.Local {
		step("directory", false, "the failure did not record a CA that can be re-checked (%q)", choice)
		return out
	}
	ca, err := cachoice.Open(choice, cachoice.Options{RootFile: root})
	if err != nil {
		step("directory", false, "%v", err)
		return out
	}
	defer ca.Close()
	out.Directory = ca.Directory
	u, err := url.Parse(ca.Directory)
	if err != nil || u.Hostname() == "" {
		step("directory", false, "%q is not a directory URL", ca.Directory)
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		lookup := ep.LookupHost
		if lookup == nil {
			lookup = net.DefaultResolver.LookupHost
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = lookup(lctx, host)
		lcancel()
		if !step("resolve", err == nil && len(addrs) > 0, "%s: %s", host, orErr(addrs, err)) {
			return out
		}
	}
	dial := ep.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var conn net.Conn
	var target string
	for _, a := range addrs {
		target = net.JoinHostPort(a, port)
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err = dial(dctx, "tcp", target)
		dcancel()
		if err == nil {
			break
		}
	}
	if !step("connect", err == nil, "tcp %s: %s", target, okOr(err)) {
		return out
	}
	conn.Close()
	client := ep.Client
	if client == nil {
		client = ca.Client
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ca.Directory, nil)
	resp, err := client.Do(req)
	if err != nil {
		step("directory", false, "GET %s: %v", ca.Directory, err)
		return out
	}
	defer resp.Body.Close()
	var dir struct {
		NewNonce string `json:"newNonce"`
		NewOrder string `json:"newOrder"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &dir) != nil || dir.NewNonce == "" || dir.NewOrder == "" {
		step("directory", false, "GET %s: HTTP %d, not an ACME directory", ca.Directory, resp.StatusCode)
		return out
	}
	out.OK = step("directory", true, "GET %s: an ACME directory (HTTP 200)", ca.Directory)
	return out
}

func orErr(addrs []string, err error) string {
	if err != nil {
		return err.Error()
	}
	if len(addrs) == 0 {
		return "no addresses"
	}
	return fmt.Sprint(addrs)
}

func okOr(err error) string {
	if err != nil {
		return err.Error()
	}
	return "connected"
}
