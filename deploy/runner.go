package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one program to run.
type Cmd struct {
	Path string   // program name (looked up in PATH) or path
	Args []string // arguments, without the program name
	Env  []string // KEY=VALUE added to the inherited environment
	Dir  string   // working directory; empty is the caller's
}

// String is the command as a person would type it, for messages and logs.
func (c Cmd) String() string {
	parts := append([]string{c.Path}, c.Args...)
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t\n'\"\\$;&|<>*?()[]{}`#~") {
			parts[i] = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

// Runner runs a program and returns what it printed, standard output and
// standard error interleaved as a person would see them on a terminal. A
// program that exits non-zero returns its output and an error.
type Runner interface {
	Run(ctx context.Context, c Cmd) ([]byte, error)
}

// MaxOutput bounds the output kept from one command: enough for any config
// test or reload message, small enough for a log line or renewal.json.
const MaxOutput = 64 << 10

// ExecRunner runs real programs. When ctx ends, the program's whole process
// group is killed, so a hook that started background children (a shell
// running "sleep 100 &") cannot keep the run waiting on its output pipe.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	// LC_ALL=C: config tests are parsed and shown in messages; a localised
	// "Syntax OK" would read differently on every machine.
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), c.Env...)
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	b := out.Bytes()
	if err != nil {
		if ctx.Err() != nil {
			return b, fmt.Errorf("%s: stopped: %w", c, ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return b, fmt.Errorf("%s: %v", c, ee)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return b, fmt.Errorf("%s: %s is not installed or not in PATH", c, c.Path)
		}
		return b, fmt.Errorf("%s: %w", c, err)
	}
	return b, nil
}

// limitedBuffer keeps the first MaxOutput bytes and counts the rest, so a
// chatty command cannot fill memory.
type limitedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := MaxOutput - l.buf.Len()
	if room >= len(p) {
		l.buf.Write(p)
		return len(p), nil
	}
	if room > 0 {
		l.buf.Write(p[:room])
	}
	l.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := append([]byte{}, l.buf.Bytes()...)
	if l.dropped > 0 {
		b = append(b, fmt.Sprintf("\n[... %d more bytes of output not kept]\n", l.dropped)...)
	}
	return b
}
