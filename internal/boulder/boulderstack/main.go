// Command boulderstack prepares the cached Boulder (.ci/run calls
// `go run ./internal/boulder/boulderstack prepare`) and runs one by hand:
//
//	go run ./internal/boulder/boulderstack up 64.112.117.10
//
// brings a stack up in a namespace of its own with that address on its
// loopback, prints the namespace and the directory, and stops on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipcert/ipcert/internal/boulder"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "prepare" && os.Args[1] != "up") {
		fmt.Fprintln(os.Stderr, "usage: boulderstack prepare | up [ADDRESS...]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(s string) { fmt.Fprintln(os.Stderr, s) }
	in, err := boulder.Prepare(ctx, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Args[1] == "prepare" {
		fmt.Println(in.Dir)
		return
	}
	var addrs []netip.Addr
	for _, a := range os.Args[2:] {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			fmt.Fprintf(os.Stderr, "boulderstack: %q is not an IP address\n", a)
			os.Exit(2)
		}
		addrs = append(addrs, ip)
	}
	s, err := boulder.Start(ctx, in, boulder.Options{Addresses: addrs, Log: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer s.Close()
	fmt.Printf("namespace %s\ndirectory %s (trust %s)\nissuer roots %v\nlogs %s/logs\n", s.NS, s.Directory, s.TLSRoot, s.IssuerRoots, s.Dir)
	<-ctx.Done()
}
