// Command preflightfake serves stand-ins for the internet endpoints of
// ipcert preflight on loopback, for bench/preflight.sh: in "answer" mode
// echo, DNS, STUN and NAT-PMP fakes that answer at once; in "blackhole"
// mode ports that accept or read and never answer (the slowest kind of
// unreachable). It prints the ipcert preflight flags that point at them,
// then serves until killed. Nothing leaves 127.0.0.1 and ::1.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/miekg/dns"
	"github.com/pion/stun/v3"
)

func main() {
	mode := flag.String("mode", "answer", "answer or blackhole")
	flag.Parse()
	var args []string
	add := func(flagName, v string) { args = append(args, "--"+flagName, v) }
	for _, fam := range []struct {
		n, host, addr string
	}{{"4", "127.0.0.1", "127.0.0.1"}, {"6", "[::1]", "::1"}} {
		tcp, udp := "tcp"+fam.n, "udp"+fam.n
		for i := 0; i < 3; i++ {
			ln := must(net.Listen(tcp, fam.host+":0"))
			if *mode == "answer" {
				go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, fam.addr+"\n")
				}))
			} else {
				go hold(ln)
			}
			add("echo"+fam.n, "http://"+ln.Addr().String())
		}
		for _, q := range []string{"A", "TXT"} {
			pc := must(net.ListenPacket(udp, fam.host+":0"))
			if *mode == "answer" {
				go dnsServe(pc, fam.addr)
			} else {
				go drain(pc)
			}
			qt := q
			if q == "A" && fam.n == "6" {
				qt = "AAAA"
			}
			add("dns"+fam.n, "myip.example/"+qt+"@"+pc.LocalAddr().String())
		}
		pc := must(net.ListenPacket(udp, fam.host+":0"))
		if *mode == "answer" {
			go stunServe(pc, fam.addr)
		} else {
			go drain(pc)
		}
		add("stun"+fam.n, pc.LocalAddr().String())
	}
	pmp := must(net.ListenPacket("udp4", "127.0.0.1:0"))
	go drain(pmp) // a router that does not speak NAT-PMP
	add("natpmp", pmp.LocalAddr().String())
	md := must(net.Listen("tcp4", "127.0.0.1:0"))
	go hold(md)
	add("metadata-url", "http://"+md.Addr().String())
	fmt.Println(strings.Join(args, " "))
	os.Stdout.Sync()
	select {}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// hold accepts connections and reads them without ever answering.
func hold(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { _, _ = io.Copy(io.Discard, c) }()
	}
}

func drain(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return
		}
	}
}

func dnsServe(pc net.PacketConn, addr string) {
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		var rr dns.RR
		switch q.Qtype {
		case dns.TypeA:
			rr, _ = dns.NewRR(q.Name + " 0 IN A " + addr)
		case dns.TypeAAAA:
			rr, _ = dns.NewRR(q.Name + " 0 IN AAAA " + addr)
		default:
			rr, _ = dns.NewRR(q.Name + ` 0 IN TXT "` + addr + `"`)
		}
		if rr != nil {
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	_ = srv.ActivateAndServe()
}

func stunServe(pc net.PacketConn, addr string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil {
			continue
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: net.ParseIP(addr), Port: 4242}, stun.Fingerprint)
		if err == nil {
			_, _ = pc.WriteTo(resp.Raw, from)
		}
	}
}
