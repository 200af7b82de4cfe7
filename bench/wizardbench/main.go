// Command wizardbench measures how long `ipcert demo` takes from process
// start to its first frame on a terminal: it runs the binary on a fresh
// pseudo-terminal (80x24), times the moment the welcome screen's header
// arrives, then quits it with "q". See bench/wizard.md.
//
// Usage: go run ./bench/wizardbench -bin /tmp/ipcert [-runs 21]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	bin := flag.String("bin", "", "the ipcert binary")
	runs := flag.Int("runs", 21, "runs")
	want := flag.String("want", "step 1 of 9", "text of the first frame")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "wizardbench: -bin is required")
		os.Exit(2)
	}
	var ds []time.Duration
	for i := 0; i < *runs; i++ {
		d, err := once(*bin, *want)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wizardbench: run %d: %v\n", i+1, err)
			os.Exit(1)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("first frame of `ipcert demo` at 80x24, %d runs: min %.1f ms, median %.1f ms, p90 %.1f ms, max %.1f ms\n",
		len(ds), ms(ds[0]), ms(ds[len(ds)/2]), ms(ds[len(ds)*9/10]), ms(ds[len(ds)-1]))
	if ds[len(ds)/2] > 150*time.Millisecond {
		fmt.Println("FAIL: the median is above the 150 ms budget")
		os.Exit(1)
	}
}

// openPTY returns a new pseudo-terminal pair (Linux /dev/ptmx).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80}); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func once(bin, want string) (time.Duration, error) {
	master, slave, err := openPTY()
	if err != nil {
		return 0, err
	}
	defer master.Close()
	dir, err := os.MkdirTemp("", "wizardbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(bin, "demo", "--state-dir", dir)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color", "LANG=C.UTF-8")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	slave.Close()
	defer cmd.Wait()
	var seen []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	master.SetReadDeadline(deadline)
	answered := 0
	for !bytes.Contains(seen, []byte(want)) {
		n, err := master.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			cmd.Process.Kill()
			return 0, fmt.Errorf("no first frame (%v); output so far: %q", err, seen)
		}
		// Answer the terminal queries like a terminal emulator does:
		// bubbletea's init asks (through termenv) for the background
		// colour (OSC 11) and the cursor position (CSI 6n), and waits up
		// to 5 s for an answer.
		for answered < bytes.Count(seen, []byte("\x1b[6n")) {
			if bytes.Contains(seen, []byte("\x1b]11;?")) {
				master.Write([]byte("\x1b]11;rgb:0000/0000/0000\x1b\\"))
			}
			master.Write([]byte("\x1b[1;1R"))
			answered++
		}
	}
	d := time.Since(start)
	master.Write([]byte("q"))
	go func() {
		// Drain until the program ends, so it never blocks on a full pty.
		for {
			if _, err := master.Read(buf); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		return 0, fmt.Errorf("ipcert demo did not quit on q within 5 s")
	}
	return d, nil
}
