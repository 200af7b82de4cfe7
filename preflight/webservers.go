package preflight

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"

	"github.com/prometheus/procfs"
)

// WebServer is a web server found on this machine. For nginx and Apache it
// carries the default server's web root, so the plan can offer http-01 into
// that web root instead of stopping the server.
type WebServer struct {
	Name string `json:"name"` // a catalogue kind: nginx, apache, ..., dnsdist, cockpit
	// Web: an HTTP server (the others serve TLS only: DNS, Cockpit, stunnel).
	Web       bool   `json:"web"`
	Running   bool   `json:"running"`
	PIDs      []int  `json:"pids,omitempty"`
	Installed bool   `json:"installed"`
	Binary    string `json:"binary,omitempty"`
	// ConfigTest and Reload are the commands to check and reload the
	// configuration after adding a snippet.
	ConfigTest string `json:"config_test,omitempty"`
	Reload     string `json:"reload,omitempty"`
	// Pickup is what makes it serve a new certificate (reload, signal,
	// console, restart); Gap what a restart costs.
	Pickup string `json:"pickup,omitempty"`
	Gap    string `json:"gap,omitempty"`
	// WebRoot is the default server's document root (empty when unknown
	// or when the default server has none, e.g. a proxy).
	WebRoot string `json:"web_root,omitempty"`
	// WebRootFrom says where WebRoot was read (file:line or command).
	WebRootFrom string `json:"web_root_from,omitempty"`
	// Redirects is true when the default server answers every request
	// with a redirect: the challenge path must be exempted (docs/letsencrypt.md).
	Redirects bool   `json:"redirects,omitempty"`
	Note      string `json:"note,omitempty"`
}

// isWebServer says whether a process name (comm) is a web server of the
// catalogue (the one list of services, deploy/catalog).
func isWebServer(comm string) bool {
	return isService(comm, true)
}

// isService says whether a process name is a service of the catalogue
// (web servers only, with web).
func isService(comm string, web bool) bool {
	for _, svc := range catalog.All(catalog.Debian) {
		if web && !svc.Web {
			continue
		}
		if slices.Contains(svc.Procs, comm) || slices.Contains(catalog.Lookup(svc.Kind, catalog.RHEL).Procs, comm) {
			return true
		}
	}
	return false
}

// FindWebServers looks for the services of the catalogue (deploy/catalog:
// web servers, DNS resolvers, Cockpit, stunnel), running
// (/proc/<pid>/comm) or installed (LookPath), with the distribution's
// names, config test and reload; for nginx and Apache it reads the default
// server's web root from `nginx -T` and `apache2ctl -S`.
func FindWebServers(ctx context.Context, env Env) []WebServer {
	env = env.withDefaults()
	distro := catalog.DetectDistro(env.Root)
	_, err := os.Stat(env.path("run/systemd/system"))
	systemd := err == nil
	running := map[string][]int{}
	// A service in another network namespace (a container, a test's
	// namespace) serves none of this machine's ports: it is not running
	// here. Where the links cannot be read (a recorded /proc), every
	// process counts.
	self, selfErr := os.Readlink(env.path("proc/self/ns/net"))
	if fs, err := procfs.NewFS(env.path("proc")); err == nil {
		if procs, err := fs.AllProcs(); err == nil {
			for _, p := range procs {
				comm, err := p.Comm()
				if err != nil {
					continue
				}
				if selfErr == nil && isService(comm, false) {
					ns, err := os.Readlink(env.path(fmt.Sprintf("proc/%d/ns/net", p.PID)))
					// Another namespace's server, or one that is gone
					// since the listing (a config test's nginx -t lives
					// milliseconds): not running here. A link this user
					// may not read (another user's server) still counts.
					if err == nil && ns != self || errors.Is(err, os.ErrNotExist) {
						continue
					}
				}
				running[comm] = append(running[comm], p.PID)
			}
		}
	}
	var out []WebServer
	for _, k := range catalog.All(distro) {
		ws := WebServer{Name: string(k.Kind), ConfigTest: k.TestLine(), Web: k.Web, Pickup: string(k.Pickup), Gap: k.Gap}
		if args := k.PickupArgs(systemd); args != nil {
			ws.Reload = strings.Join(args, " ")
		}
		for _, p := range k.Procs {
			ws.PIDs = append(ws.PIDs, running[p]...)
		}
		ws.Running = len(ws.PIDs) > 0
		for _, b := range k.Programs {
			if path, err := env.LookPath(b); err == nil {
				ws.Installed, ws.Binary = true, path
				break
			}
		}
		if !ws.Running && !ws.Installed {
			continue
		}
		if ws.Installed {
			switch k.Kind {
			case catalog.Nginx:
				nginxRoot(ctx, env, &ws)
			case catalog.Apache:
				apacheRoot(ctx, env, &ws)
			}
		}
		out = append(out, ws)
	}
	return out
}

// nginxRoot reads the full configuration with `nginx -T` and finds the
// server that answers a request for a bare IP on port 80: the one marked
// default_server, else the first listening on 80 (nginx's own rule).
func nginxRoot(ctx context.Context, env Env, ws *WebServer) {
	out, err := env.Runner.Run(ctx, ws.Binary, "-T")
	if err != nil && len(out) == 0 {
		ws.Note = "nginx -T failed: " + shortErr(err)
		return
	}
	srvs := parseNginxServers(string(out))
	var pick *nginxServer
	for i := range srvs {
		s := &srvs[i]
		if s.listens80 && s.defaultServer {
			pick = s
			break
		}
		if s.listens80 && pick == nil {
			pick = s
		}
	}
	if pick == nil {
		ws.Note = "no server block listens on port 80"
		return
	}
	ws.WebRoot, ws.WebRootFrom, ws.Redirects = pick.root, "nginx -T: "+pick.file, pick.redirects
	if ws.WebRoot == "" && !pick.redirects {
		// nginx's compiled-in default "html" is relative to its prefix.
		ws.Note = "the default server sets no root"
	}
}

type nginxServer struct {
	file          string
	listens80     bool
	anyListen     bool
	defaultServer bool
	root          string
	redirects     bool
}

// parseNginxServers splits `nginx -T` output into server blocks of the
// http context and reads listen, root and a top-level return from each.
func parseNginxServers(conf string) []nginxServer {
	var out []nginxServer
	file, httpRoot := "", ""
	var stack []string
	var cur *nginxServer
	var stmt []string
	flush := func(end byte) {
		defer func() { stmt = nil }()
		if len(stmt) == 0 {
			if end == '}' && len(stack) > 0 {
				if stack[len(stack)-1] == "server" && cur != nil && !inStream(stack) {
					if !cur.anyListen {
						// A server with no listen directive listens on
						// *:80 (nginx docs, "listen").
						cur.listens80 = true
					}
					out = append(out, *cur)
					cur = nil
				}
				stack = stack[:len(stack)-1]
			}
			return
		}
		switch end {
		case '{':
			stack = append(stack, stmt[0])
			if stmt[0] == "server" && !inStream(stack) {
				cur = &nginxServer{file: file}
			}
		case ';':
			if cur == nil {
				// A root in the http block is inherited by every
				// server that sets none.
				if len(stack) == 1 && stack[0] == "http" && stmt[0] == "root" && len(stmt) > 1 {
					httpRoot = strings.Trim(stmt[1], `"'`)
				}
				return
			}
			depth := len(stack)
			serverLevel := depth > 0 && stack[depth-1] == "server"
			switch stmt[0] {
			case "listen":
				cur.anyListen = true
				if len(stmt) > 1 && listenPort(stmt[1]) == 80 {
					cur.listens80 = true
					for _, o := range stmt[2:] {
						if o == "default_server" || o == "default" {
							cur.defaultServer = true
						}
					}
				}
			case "root":
				if len(stmt) > 1 && (serverLevel || (depth > 1 && stack[depth-1] == "location" && cur.root == "")) {
					cur.root = strings.Trim(stmt[1], `"'`)
				}
			case "return":
				if serverLevel && len(stmt) > 1 && (stmt[1] == "301" || stmt[1] == "302" || stmt[1] == "307" || stmt[1] == "308") {
					cur.redirects = true
				}
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(conf))
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "# configuration file "); ok {
			file = strings.TrimSuffix(f, ":")
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		tok := ""
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch c {
			case '{', '}', ';':
				if tok != "" {
					stmt = append(stmt, tok)
					tok = ""
				}
				if c == '{' && len(stmt) > 0 && stmt[0] == "location" {
					stmt = stmt[:1]
				}
				flush(c)
			case ' ', '\t':
				if tok != "" {
					stmt = append(stmt, tok)
					tok = ""
				}
			default:
				tok += string(c)
			}
		}
		if tok != "" {
			stmt = append(stmt, tok)
		}
	}
	for i := range out {
		if out[i].root == "" && !out[i].redirects {
			out[i].root = httpRoot
		}
	}
	return out
}

func inStream(stack []string) bool {
	for _, s := range stack {
		if s == "stream" || s == "mail" {
			return true
		}
	}
	return false
}

// listenPort reads the port of an nginx listen argument: 80, *:80,
// [::]:80, 127.0.0.1 (port 80), unix:/path (none).
func listenPort(arg string) int {
	if strings.HasPrefix(arg, "unix:") {
		return 0
	}
	if i := strings.LastIndex(arg, ":"); i >= 0 && !strings.HasSuffix(arg, "]") {
		arg = arg[i+1:]
	}
	if n, err := strconv.Atoi(arg); err == nil {
		return n
	}
	return 80
}

var apacheDefault = regexp.MustCompile(`default server \S+ \(([^:()]+):(\d+)\)`)
var apacheVhost80 = regexp.MustCompile(`^\*?[\w.:\[\]]*:80\s+\S+ \(([^:()]+):(\d+)\)`)
var apacheMainRoot = regexp.MustCompile(`Main DocumentRoot: "([^"]+)"`)

// apacheRoot asks `apache2ctl -S` which virtual host is the default on
// port 80 and reads its DocumentRoot from the file and line it names.
func apacheRoot(ctx context.Context, env Env, ws *WebServer) {
	// apache2 -S and httpd -S answer too, when apache2ctl is missing.
	out, err := env.Runner.Run(ctx, ws.Binary, "-S")
	if err != nil && len(out) == 0 {
		ws.Note = "apache2ctl -S failed: " + shortErr(err)
		return
	}
	s := string(out)
	in80 := false
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(line, "*:") || strings.HasPrefix(line, "[") || (len(line) > 0 && line[0] != ' ' && line[0] != '\t' && strings.Contains(t, ":")) {
			in80 = strings.Contains(strings.Fields(t)[0], ":80")
		}
		var m []string
		if in80 {
			m = apacheDefault.FindStringSubmatch(t)
		}
		if m == nil {
			m = apacheVhost80.FindStringSubmatch(t)
		}
		if m != nil {
			n, _ := strconv.Atoi(m[2])
			if root, line, ok := vhostDocRoot(env.path(m[1]), n); ok {
				ws.WebRoot, ws.WebRootFrom = root, fmt.Sprintf("%s:%d", m[1], line)
				return
			}
			break
		}
	}
	if m := apacheMainRoot.FindStringSubmatch(s); m != nil {
		ws.WebRoot, ws.WebRootFrom = m[1], "apache2ctl -S: Main DocumentRoot"
	}
}

// vhostDocRoot reads the DocumentRoot of the <VirtualHost> starting at line.
func vhostDocRoot(path string, line int) (string, int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	lines := strings.Split(string(b), "\n")
	for i := max(line-1, 0); i < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) == 0 {
			continue
		}
		if strings.EqualFold(f[0], "</VirtualHost>") {
			break
		}
		if strings.EqualFold(f[0], "DocumentRoot") && len(f) > 1 {
			return strings.Trim(f[1], `"`), i + 1, true
		}
	}
	return "", 0, false
}

func (st *state) checkWebServers(ctx context.Context, env Env) Result {
	wss := FindWebServers(ctx, env)
	st.set(func(r *Report) { r.WebServers = wss })
	r := Result{Status: StatusOK}
	if len(wss) == 0 {
		r.Summary = "no web server running or installed: the standalone responder can take the ports"
		return r
	}
	var parts []string
	for _, ws := range wss {
		state := "installed, not running"
		if ws.Running {
			state = fmt.Sprintf("running (pid %s)", joinInts(ws.PIDs))
		}
		e := ws.Name + ": " + state
		if ws.Binary != "" {
			e += ", " + ws.Binary
		}
		if ws.WebRoot != "" {
			e += ", default web root " + ws.WebRoot + " (" + ws.WebRootFrom + ")"
		}
		if ws.Redirects {
			e += ", the default server redirects every request"
		}
		if ws.Note != "" {
			e += ", " + ws.Note
		}
		r.Evidence = append(r.Evidence, e)
		if ws.Running {
			p := ws.Name + " running"
			if ws.WebRoot != "" {
				p += ", web root " + ws.WebRoot
			}
			parts = append(parts, p)
			if ws.Redirects {
				r.Status = StatusWarn
				r.Fix = "the default " + ws.Name + " server redirects: exempt /.well-known/acme-challenge/ from the redirect (ipcert snippet " + ws.Name + " NAME, for a certificate NAME, shows how), or Let's Encrypt follows it only to ports 80/443"
			} else if ws.WebRoot != "" && r.Fix == "" {
				r.Fix = "http-01 can write into " + ws.WebRoot + " without stopping " + ws.Name + ": --challenge http-01 --webroot " + ws.WebRoot
			}
		}
	}
	if len(parts) == 0 {
		r.Summary = "installed but not running: " + names(wss)
	} else {
		r.Summary = strings.Join(parts, "; ")
	}
	return r
}

func names(wss []WebServer) string {
	var s []string
	for _, w := range wss {
		s = append(s, w.Name)
	}
	return strings.Join(s, ", ")
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
