package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// bin is the ipcert binary built once for the package.
var bin string

func TestMain(m *testing.M) {
	var err error
	if bin, err = testkit.BinaryPath(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type result struct {
	code     int
	stdout   string
	stderr   string
	duration time.Duration
}

// ipcert runs the binary with args and a clean environment plus env.
func ipcert(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	start := time.Now()
	var r result
	r.stdout, r.stderr, r.code = testkit.Run(t, cmd)
	r.duration = time.Since(start)
	return r
}

// figure prints a measured figure in a form scripts/reliability collects.
func figure(t *testing.T, name string, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: %s", name, fmt.Sprintf(format, args...))
}

func requireCI(t *testing.T, why string) {
	t.Helper()
	testkit.Need(t, false, why)
}

func hasPanic(s string) bool {
	return strings.Contains(s, "panic:") || strings.Contains(s, "goroutine ") && strings.Contains(s, "[running]")
}
