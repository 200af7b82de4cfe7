// Command delayproxy is the benchmarks' stand-in for Let's Encrypt's
// validation delay: a TCP proxy on loopback that holds every connection
// for a delay before passing it to the responder, so that the challenge is
// still pending after the POST, as at Let's Encrypt (several remote
// perspectives, seconds), instead of validated at once as by Pebble.
//
//	delayproxy -listen 0.0.0.0:P -to-port Q -delay-file F
//
// passes a connection that reached address A on port P to A:Q (so one
// proxy serves every 127.0.0.x of a many-address order). F holds the delay as a Go duration ("1.5s", "0s"), read for every
// connection, so one Pebble serves both benchmark modes.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to listen on (loopback)")
	toPort := flag.String("to-port", "", "port to pass connections to, on the address they reached")
	delayFile := flag.String("delay-file", "", "file holding the delay")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "delayproxy:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "delayproxy:", err)
			os.Exit(1)
		}
		host, _, _ := net.SplitHostPort(c.LocalAddr().String())
		go pass(c, net.JoinHostPort(host, *toPort), readDelay(*delayFile))
	}
}

func readDelay(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return d
}

func pass(c net.Conn, to string, delay time.Duration) {
	defer c.Close()
	time.Sleep(delay)
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
	go func() { defer wg.Done(); io.Copy(c, up); c.(*net.TCPConn).CloseWrite() }()
	wg.Wait()
}
