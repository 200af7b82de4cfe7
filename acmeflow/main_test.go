package acmeflow

import (
	"io"
	stdlog "log"
	"os"
	"testing"

	legolog "github.com/go-acme/lego/v4/log"
)

func TestMain(m *testing.M) {
	// lego logs nonce retries through a global logger; keep test output
	// readable (main points it at the debug log or discards it).
	legolog.Logger = stdlog.New(io.Discard, "", 0)
	os.Exit(m.Run())
}
