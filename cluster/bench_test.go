package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// BenchmarkAnswerFromStore: one validator request answered by an agent
// from etcd (target: median <= 10 ms). Reports the median and p95.
func BenchmarkAnswerFromStore(b *testing.B) {
	e := startEtcd(b)
	key := keyFile(b)
	s := connect(b, e, key)
	release, err := s.PutChallenge(context.Background(), "http-01", "tok", "tok.thumb", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	defer release(context.Background())
	l := listenLocal(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Answerer{Store: s}).Serve(ctx, l, nil)
	url := "http://" + l.Addr().String() + "/.well-known/acme-challenge/tok"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchmarkServedEverywhere: from the issuer's write of a new version to
// the moment three agents have installed it (target: <= 1 s).
func BenchmarkServedEverywhere(b *testing.B) {
	e := startEtcd(b)
	key := keyFile(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	installed := make(chan struct{}, 3*b.N+3)
	for i := range 3 {
		local, err := store.Open(filepath.Join(b.TempDir(), "m"))
		if err != nil {
			b.Fatal(err)
		}
		a := &Agent{Store: connect(b, e, key), Local: local, ID: "m" + string(rune('1'+i)),
			Log: func(line string) {
				if strings.Contains(line, "installed the cluster's version") {
					installed <- struct{}{}
				}
			}}
		go func() { _ = a.Run(ctx, nil, nil) }()
	}
	issuer := connect(b, e, key)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := issuer.Lock(ctx, "bench", 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		full, keyPEM := selfSigned(b)
		start := time.Now()
		if _, err := issuer.PutCertificate(ctx, l, Certificate{Name: "bench", Version: i + 1, FullChain: full, Key: keyPEM, NotAfter: time.Now().Add(time.Hour),
			Settings: &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"127.0.0.1"}, CA: "local"}, Name: "bench"}}); err != nil {
			b.Fatal(err)
		}
		for range 3 {
			select {
			case <-installed:
			case <-time.After(10 * time.Second):
				b.Fatal("an agent did not install the new version in 10 s")
			}
		}
		lat = append(lat, time.Since(start))
		_ = l.Unlock(ctx)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// selfSigned is a certificate and its key, as PEM.
func selfSigned(b testing.TB) ([]byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
