package localca

import "github.com/ipcert/ipcert/internal/ports"

// TB is what StartForTest needs of a *testing.T (this package is linked
// into ipcert for the demo: it does not import testing).
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// StartForTest is the one way tests start the local CA: its validator
// knocks on one free port for both challenges (returned, for the
// responder to listen on), and it is closed when the test ends.
func StartForTest(t TB, opts Options) (*Server, int) {
	t.Helper()
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opts.HTTPPort, opts.TLSPort = port, port
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, port
}
