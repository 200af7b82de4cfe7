package acmeflow

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/spec"
	"golang.org/x/sys/unix"
)

// Challenge types ipcert can answer for IP identifiers. dns-01 is not among
// them: there is no DNS name to put a TXT record under (RFC 8738 section 7).
const (
	ChallengeHTTP01    = spec.HTTP01
	ChallengeTLSALPN01 = spec.TLSALPN01
)

// acmeTLSALPN is the ALPN protocol of tls-alpn-01 (RFC 8737 section 6.2).
const acmeTLSALPN = "acme-tls/1"

// oidACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 section 6.1).
var oidACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// challengeAnswer is what a responder must serve for one identifier.
type challengeAnswer struct {
	ident   netip.Addr
	token   string
	keyAuth string
}

// responder serves the answers to the CA's validators and reports every
// request it receives.
type responder interface {
	// add makes answers available; called before the challenge is accepted.
	add(a challengeAnswer) error
	close()
}

// seenLog records validator requests and passes them to the event stream:
// a bounded record (responder_limits.go), the rest counted.
type seenLog struct {
	mu      sync.Mutex
	reqs    []ValidatorRequest
	policy  keepPolicy
	dropped int // requests not kept
	refused int // connections refused or closed by the limits
	warned  bool
	emit    func(Event)
}

// record keeps v when the policy allows (challenge is the token or
// reverse name v was answered for, "" when it was not answered), else
// counts it. Only kept requests become events, so nothing downstream (the
// log on stderr, the wizard's screen, the poller's wake-ups) grows with a
// flood; the first request not kept says so once.
func (l *seenLog) record(v ValidatorRequest, challenge string) {
	l.mu.Lock()
	if !l.policy.keep(v.Answered, challenge, v.Remote) {
		l.dropped++
		warn := !l.warned
		l.warned = true
		l.mu.Unlock()
		if warn {
			l.emit(Event{Time: v.Time, Kind: EventWarning, Step: StepChallenge, Message: l.dropNote()})
		}
		return
	}
	v = v.bounded()
	l.reqs = append(l.reqs, v)
	l.mu.Unlock()
	l.emit(Event{Time: v.Time, Kind: EventValidator, Step: StepChallenge, Message: v.String(), Validator: &v})
}

func (l *seenLog) dropNote() string {
	return fmt.Sprintf("more requests reach the responder than ipcert keeps: per challenge the first answered request of up to %d sources and the first %d others (%d per source) are shown, the rest only counted",
		maxAnsweredSources, maxUnanswered, maxUnansweredPerSource)
}

// refuse counts a connection the limits refused or closed.
func (l *seenLog) refuse() {
	l.mu.Lock()
	l.refused++
	l.mu.Unlock()
}

// counts are the requests not kept and the connections refused.
func (l *seenLog) counts() (dropped, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped, l.refused
}

// Printable escapes what the client sent (issue 12): every consumer of
// the request (the wizard's screen, the log, the diagnosis, renewal.json)
// gets text that cannot drive a terminal.
func (v ValidatorRequest) Printable() ValidatorRequest {
	v.Remote, v.Local, v.Host, v.Path = Printable(v.Remote), Printable(v.Local), Printable(v.Host), Printable(v.Path)
	v.SNI, v.UserAgent, v.Note = Printable(v.SNI), Printable(v.UserAgent), Printable(v.Note)
	if v.ALPN != nil {
		alpn := make([]string, len(v.ALPN))
		for i, a := range v.ALPN {
			alpn[i] = Printable(a)
		}
		v.ALPN = alpn
	}
	return v
}

func (l *seenLog) snapshot() []ValidatorRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ValidatorRequest(nil), l.reqs...)
}

// listenAddrs returns where a standalone responder must listen so that
// validators reach it for every identifier. An unspecified host (":80",
// "[::]:80") is one dual-stack socket; a specific host gets a second socket
// on each identifier of the other family, same port.
func listenAddrs(listen string, idents []netip.Addr) ([]string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %v; give ADDR:PORT such as :80 or 127.0.0.1:5002", listen, err)
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	h, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: host must be an IP address", listen)
	}
	addrs := []string{listen}
	for _, id := range idents {
		if id.Is4() != h.Is4() {
			addrs = append(addrs, net.JoinHostPort(id.String(), port))
		}
	}
	return addrs, nil
}

// listenFor opens the sockets a standalone responder needs for idents.
func listenFor(ctx context.Context, listen string, idents []netip.Addr) ([]net.Listener, error) {
	addrs, err := listenAddrs(listen, idents)
	if err != nil {
		return nil, err
	}
	return listenAll(ctx, addrs)
}

// listenAll opens every address or none.
func listenAll(ctx context.Context, addrs []string) ([]net.Listener, error) {
	var lc net.ListenConfig
	var ls []net.Listener
	for _, a := range addrs {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// httpResponder is the standalone http-01 server (RFC 8555 section 8.3).
type httpResponder struct {
	mu      sync.Mutex
	answers map[string]string // token -> key authorization
	srvs    []*http.Server
	addrs   []string // where it listens
	seen    *seenLog
	wg      sync.WaitGroup
}

func startHTTPResponder(ctx context.Context, listen string, idents []netip.Addr, seen *seenLog) (*httpResponder, error) {
	ls, err := listenFor(ctx, listen, idents)
	if err != nil {
		return nil, err
	}
	r := &httpResponder{answers: map[string]string{}, seen: seen}
	for _, l := range ls {
		srv := &http.Server{
			Handler: http.HandlerFunc(r.serve),
			// A validator's GET is a few hundred bytes, sent at once.
			MaxHeaderBytes:    maxRequestBytes,
			ReadHeaderTimeout: responderHeaderTimeout,
			ReadTimeout:       responderIOTimeout,
			WriteTimeout:      responderIOTimeout,
			IdleTimeout:       responderIOTimeout,
			// net/http's own complaints (bad requests, accept errors)
			// would go to stderr, once per attacker's request.
			ErrorLog:  log.New(io.Discard, "", 0),
			ConnState: trackIdle,
		}
		srv.SetKeepAlivesEnabled(false) // one request per connection (serve)
		r.srvs = append(r.srvs, srv)
		r.addrs = append(r.addrs, l.Addr().String())
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			_ = srv.Serve(newLimitListener(l, seen))
		}()
	}
	return r, nil
}

const challengePrefix = "/.well-known/acme-challenge/"

func (r *httpResponder) serve(w http.ResponseWriter, req *http.Request) {
	// One request per connection: a validator fetches one token and
	// goes (Boulder's VA keeps no connection), and a connection kept idle
	// for reuse could be closed under the per-source cap while the client
	// picks it for its next request ("server closed idle connection":
	// Pebble's validator reuses them).
	w.Header().Set("Connection", "close")
	v := ValidatorRequest{
		Time: time.Now(), Challenge: ChallengeHTTP01, Remote: req.RemoteAddr,
		Host: req.Host, Path: req.URL.Path, UserAgent: req.UserAgent(),
	}
	if la, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		v.Local = la.String()
	}
	token, isChallenge := strings.CutPrefix(req.URL.Path, challengePrefix)
	r.mu.Lock()
	ka, known := r.answers[token]
	r.mu.Unlock()
	switch {
	case !isChallenge:
		v.Status, v.Note = http.StatusNotFound, "not a challenge path"
		http.NotFound(w, req)
	case !known:
		v.Status, v.Note = http.StatusNotFound, "unknown token"
		http.NotFound(w, req)
	default:
		v.Status, v.Answered = http.StatusOK, true
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(ka))
	}
	if !v.Answered {
		token = ""
	}
	r.seen.record(v, token)
}

func (r *httpResponder) add(a challengeAnswer) error {
	r.mu.Lock()
	r.answers[a.token] = a.keyAuth
	r.mu.Unlock()
	return nil
}

func (r *httpResponder) close() {
	for _, s := range r.srvs {
		// Close, not Shutdown: validators get nothing more from us, and the
		// listener must be gone when the engine returns.
		_ = s.Close()
	}
	r.wg.Wait()
}

// webrootResponder writes http-01 answers into an existing web server's
// document root and removes them afterwards. The web server answers the
// validators, so we see no requests.
//
// The web root often belongs to another user (www-data, a deploy account),
// who can rename, replace and link anything inside it while root writes
// there (issue 12). So the root is opened once, and everything beneath it
// goes through directory descriptors: .well-known and acme-challenge are
// opened without following links (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS, see safefs), answers are created with their final
// mode by O_CREAT|O_EXCL|O_NOFOLLOW and written through that descriptor,
// nothing is ever chmod'ed or chown'ed by path, and only what we created,
// still the same inode, is removed.
type webrootResponder struct {
	root    string
	rootFD  int
	dirs    []webrootDir // .well-known, acme-challenge: parent fd + name, outermost first
	chalFD  int          // acme-challenge
	created []webrootDir // directories we made, outermost first
	files   []webrootFile
}

type webrootDir struct {
	parent int
	name   string
	fd     int
	id     safefs.Identity
}

type webrootFile struct {
	name string
	id   safefs.Identity
}

func newWebrootResponder(root string) (*webrootResponder, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("web root %s: %w; give the directory your web server serves for this address (--webroot)", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("web root %s is not a directory", root)
	}
	// The root itself is the administrator's choice and may be reached
	// through links (/var/www -> /srv/www); from here on nothing is.
	rfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("web root %s: %w", root, err)
	}
	w := &webrootResponder{root: root, rootFD: rfd, chalFD: -1}
	parent := rfd
	shown := root
	for _, name := range []string{".well-known", "acme-challenge"} {
		shown = filepath.Join(shown, name)
		fd, err := safefs.OpenDirAt(parent, name, shown)
		if errors.Is(err, os.ErrNotExist) {
			// 0755: the web server's user must read what we write; set
			// on the descriptor, so the umask cannot narrow it.
			if err = unix.Mkdirat(parent, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				w.close()
				return nil, fmt.Errorf("web root %s is not writable (%v); run as a user that can write there, or use the standalone responder", root, err)
			}
			made := err == nil
			fd, err = safefs.OpenDirAt(parent, name, shown)
			if err == nil && made {
				_ = unix.Fchmod(fd, 0o755)
				id, _ := safefs.IdentityOf(fd)
				w.created = append(w.created, webrootDir{parent: parent, name: name, fd: fd, id: id})
			}
		}
		if err != nil {
			w.close()
			return nil, fmt.Errorf("web root %s: %w", root, err)
		}
		w.dirs = append(w.dirs, webrootDir{parent: parent, name: name, fd: fd})
		parent = fd
	}
	w.chalFD = parent
	return w, nil
}

// validToken: RFC 8555 section 8.3 makes the token base64url; anything
// else (a '/', "..") must never become a file name.
func validToken(t string) bool {
	if t == "" || len(t) > 256 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (w *webrootResponder) add(a challengeAnswer) error {
	if !validToken(a.token) {
		return fmt.Errorf("the CA sent the challenge token %q, which is not base64url (RFC 8555 section 8.3); refusing to use it as a file name", a.token)
	}
	shown := filepath.Join(w.root, ".well-known", "acme-challenge", a.token)
	f, err := safefs.CreateFileAt(w.chalFD, a.token, shown, 0o644)
	if err != nil {
		return fmt.Errorf("write challenge file into the web root: %w", err)
	}
	id, err := safefs.IdentityOf(int(f.Fd()))
	if err == nil {
		w.files = append(w.files, webrootFile{name: a.token, id: id})
		_, err = f.Write([]byte(a.keyAuth))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write challenge file into the web root: %w", err)
	}
	return nil
}

func (w *webrootResponder) close() {
	if w.chalFD >= 0 {
		for _, f := range w.files {
			_ = safefs.RemoveIfSame(w.chalFD, f.name, f.id, false)
		}
	}
	w.files = nil
	// Only directories we made, still the same, and only if empty: never
	// remove what the user had.
	for i := len(w.created) - 1; i >= 0; i-- {
		d := w.created[i]
		_ = safefs.RemoveIfSame(d.parent, d.name, d.id, true)
	}
	w.created = nil
	for i := len(w.dirs) - 1; i >= 0; i-- {
		unix.Close(w.dirs[i].fd)
	}
	w.dirs = nil
	w.chalFD = -1
	if w.rootFD >= 0 {
		unix.Close(w.rootFD)
		w.rootFD = -1
	}
}

// tlsALPNResponder is the tls-alpn-01 server (RFC 8737) for IP identifiers:
// the validator sends the reverse-DNS name of the address as SNI (RFC 8738
// section 6), and we answer with a self-signed certificate for the address
// carrying the acmeIdentifier extension.
type tlsALPNResponder struct {
	mu     sync.Mutex
	certs  map[string]*tls.Certificate // reverse name (no trailing dot) -> challenge cert
	open   map[net.Conn]struct{}       // connections being handled, closed by close()
	closed bool
	ls     []net.Listener
	seen   *seenLog
	wg     sync.WaitGroup
	conns  sync.WaitGroup
}

func startTLSALPNResponder(ctx context.Context, listen string, idents []netip.Addr, seen *seenLog) (*tlsALPNResponder, error) {
	ls, err := listenFor(ctx, listen, idents)
	if err != nil {
		return nil, err
	}
	r := &tlsALPNResponder{certs: map[string]*tls.Certificate{}, open: map[net.Conn]struct{}{}, ls: ls, seen: seen}
	for _, l := range ls {
		r.wg.Add(1)
		go r.acceptLoop(newLimitListener(l, seen))
	}
	return r, nil
}

func (r *tlsALPNResponder) acceptLoop(l net.Listener) {
	defer r.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.open[c] = struct{}{}
		r.conns.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.conns.Done()
			r.handle(c)
			r.mu.Lock()
			delete(r.open, c)
			r.mu.Unlock()
		}()
	}
}

func (r *tlsALPNResponder) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(responderIOTimeout))
	v := ValidatorRequest{Time: time.Now(), Challenge: ChallengeTLSALPN01, Remote: c.RemoteAddr().String(), Local: c.LocalAddr().String()}
	var name string // the reverse name answered for
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, // RFC 8737 section 4
		NextProtos: []string{acmeTLSALPN},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// Only a capped part of the ClientHello outlives the
			// handshake (a list of protocols may be 64 KB).
			v.SNI = capBytes(hello.ServerName, maxFieldBytes)
			if len(hello.SupportedProtos) > maxALPNKept {
				v.ALPN = append(slices.Clone(hello.SupportedProtos[:maxALPNKept]), fmt.Sprintf("(+%d more)", len(hello.SupportedProtos)-maxALPNKept))
			} else {
				v.ALPN = slices.Clone(hello.SupportedProtos)
			}
			if !containsString(hello.SupportedProtos, acmeTLSALPN) {
				v.Note = "client did not offer ALPN acme-tls/1"
				return nil, errors.New(v.Note)
			}
			key := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
			r.mu.Lock()
			cert := r.certs[key]
			r.mu.Unlock()
			if cert == nil {
				v.Note = "no challenge for this SNI (RFC 8738 wants the reverse-DNS name of the address)"
				return nil, errors.New(v.Note)
			}
			v.Answered, name = true, key
			return cert, nil
		},
	}
	tc := tls.Server(c, cfg)
	err := tc.Handshake()
	if err != nil && v.Note == "" {
		v.Note = capBytes("handshake failed: "+err.Error(), maxFieldBytes)
		v.Answered = false
	}
	if !v.Answered {
		name = ""
	}
	r.seen.record(v, name)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *tlsALPNResponder) add(a challengeAnswer) error {
	cert, err := tlsALPNCert(a.ident, a.keyAuth)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.certs[ReverseName(a.ident)] = cert
	r.mu.Unlock()
	return nil
}

func (r *tlsALPNResponder) close() {
	for _, l := range r.ls {
		l.Close()
	}
	r.wg.Wait()
	// A half-open connection (a scanner, a validator that gave up) would
	// otherwise hold the engine for its whole 10 s handshake deadline.
	r.mu.Lock()
	r.closed = true
	for c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.conns.Wait()
}

// ReverseName is the reverse-DNS name of an address without the trailing
// dot: 4.3.2.1.in-addr.arpa, or the nibble form under ip6.arpa. RFC 8738
// section 6 makes it the SNI of tls-alpn-01 for IP identifiers.
func ReverseName(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	}
	b := a.As16()
	const hex = "0123456789abcdef"
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		sb.WriteByte(hex[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hex[b[i]>>4])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa")
	return sb.String()
}

// tlsALPNCert builds the validation certificate of RFC 8737 section 3: self
// signed, exactly one iPAddress SAN (RFC 8738), and the critical
// acmeIdentifier extension holding SHA-256 of the key authorization.
func tlsALPNCert(ident netip.Addr, keyAuth string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(keyAuth))
	ext, err := asn1.Marshal(sum[:])
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(24 * time.Hour),
		IPAddresses:     []net.IP{ident.AsSlice()},
		ExtraExtensions: []pkix.Extension{{Id: oidACMEIdentifier, Critical: true, Value: ext}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key)}, nil
}
