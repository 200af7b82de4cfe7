// Command units writes the systemd units the Debian package ships: the
// ones `ipcert timer install` writes, for /usr/bin/ipcert and /etc/ipcert
// (deploy.PackagedUnits), so the two never drift apart.
//
//	go run ./packaging/units DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipcert/ipcert/deploy"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./packaging/units DIR")
		os.Exit(2)
	}
	svc, tmr, err := deploy.PackagedUnits()
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], deploy.TimerServiceName), svc, 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(os.Args[1], deploy.TimerTimerName), tmr, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "units:", err)
		os.Exit(1)
	}
}
