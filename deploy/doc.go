// Package deploy does what follows an issuance: it writes configuration
// snippets that serve the certificate on its IP addresses for the services
// of the catalogue (deploy/catalog: nginx, Apache, HAProxy, Caddy,
// lighttpd, dnsdist, unbound, knot-resolver, Cockpit, stunnel), installs them with a backup, the server's
// own config test, a reload and a rollback; it runs deploy hooks; it checks
// which certificate an address really serves; and it summarises the state
// of every managed certificate.
//
// API:
//
//	func Snippet(kind Kind, p SnippetParams) ([]byte, error)
//	func LayoutFor(kind Kind, distro Distro, name string) Layout
//	func DetectDistro(root string) Distro
//	func DetectServers(ctx context.Context, env Env) []Server
//	func DetectServer(ctx context.Context, env Env, want Kind) (Server, error)
//	func (s Server) Layout(name string) Layout; func (s Server) ReloadCmd() Cmd
//	func Install(ctx context.Context, in Installer) (InstallResult, error)
//	func (l Layout) TestCmd() Cmd      // the config test, as Layout.User when set
//	func ServiceStatus(ctx context.Context, run Runner, unit string, systemd bool, root string) ServiceState
//	func CopyForGroup(paths CertPaths, dir, group string) (created bool, err error); func CopyHook(group, dir string) string
//	func CopyAs(paths CertPaths, dir, group string, f CopyFormat) (bool, error); func CopyHookAs(group, dir string, f CopyFormat) string
//	func InstallFiles(ctx context.Context, in Installer, paths CertPaths) (InstallResult, error) // Cockpit
//	func InstallSnippet(ctx context.Context, st *store.Store, name string, srv Server, snip []byte, opts InstallSnippetOptions) (InstallResult, ServiceState, error)
//	func RecordSnippet(ctx context.Context, st *store.Store, name string, kind Kind, ch SnippetSettings, notes io.Writer) error
//	func PKCS12(keyPEM, chainPEM []byte) ([]byte, error)
//	func CertPathsIn(name string, identifiers []string, dir string) CertPaths
//	func RunHooks(ctx context.Context, spec HookSpec, paths CertPaths) []HookResult
//	func ParseTarget(s string, defaultPort int) (netip.AddrPort, error)
//	func Verify(ctx context.Context, addr string, opts VerifyOptions) (VerifyResult, error)
//	func Judge(res *VerifyResult, expected *x509.Certificate)
//	func VerifyStored(ctx context.Context, st *store.Store, addr string, opts VerifyStoredOptions) (StoredVerifyResult, error)
//	func LoadRoots(path string) (*x509.CertPool, error)
//	func StatusHeader(st *store.Store, probe TimerProbe) StatusReport
//	func StatusEach(st *store.Store, now time.Time, opts StatusOptions, each func(CertStatus)) error
//	func StatusEachJSON(st *store.Store, now time.Time, opts StatusOptions, each func(StatusLine)) error
//
// Verify's Outcome is Match, Mismatch, Unreachable, or Unchecked (nothing to
// compare with). The renewal timer (timer*.go) shares the Runner.
//
// Like acmeflow and preflight, this package never prints and never exits:
// it takes a context and returns values and errors. Every program it starts
// goes through a Runner, so callers and tests can record or replace them.
package deploy
