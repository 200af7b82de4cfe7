package preflight

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/stun/v3"
)

// The STUN codec against an implementation nobody here wrote (pion/stun,
// used only by the tests): our request must decode there with a valid
// FINGERPRINT, and its answers must decode here.

func TestSTUNRequestDecodesInPion(t *testing.T) {
	req, txid, err := stunRequest()
	if err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: append([]byte{}, req...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("pion cannot decode our request: %v", err)
	}
	if m.Type != stun.BindingRequest || m.TransactionID != txid {
		t.Fatalf("pion reads type %v txid %x; want a binding request with %x", m.Type, m.TransactionID, txid)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Fatalf("pion rejects our FINGERPRINT: %v", err)
	}
}

func TestSTUNAnswersFromPion(t *testing.T) {
	_, txid, err := stunRequest()
	if err != nil {
		t.Fatal(err)
	}
	other := txid
	other[0] ^= 0xff
	build := func(t *testing.T, id [12]byte, setters ...stun.Setter) []byte {
		t.Helper()
		m, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(id)}, setters...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	software := stun.NewSoftware("test vector")
	for _, tc := range []struct {
		name string
		msg  []byte
		want string // the address, or a part of the error
	}{
		{"xor ipv4", build(t, txid, stun.BindingSuccess, software, &stun.XORMappedAddress{IP: net.ParseIP("192.0.2.1"), Port: 32853}, stun.Fingerprint), "192.0.2.1"},
		{"xor ipv6", build(t, txid, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.ParseIP("2001:db8:1234:5678:11:2233:4455:6677"), Port: 32853}, stun.Fingerprint), "2001:db8:1234:5678:11:2233:4455:6677"},
		{"plain mapped", build(t, txid, stun.BindingSuccess, &stun.MappedAddress{IP: net.ParseIP("198.51.100.9"), Port: 1}), "198.51.100.9"},
		{"xor wins", build(t, txid, stun.BindingSuccess, &stun.MappedAddress{IP: net.ParseIP("198.51.100.9"), Port: 1}, &stun.XORMappedAddress{IP: net.ParseIP("203.0.113.5"), Port: 2}), "203.0.113.5"},
		{"no address", build(t, txid, stun.BindingSuccess, software), "no mapped address"},
		{"error answer", build(t, txid, stun.BindingError, stun.CodeUnknownAttribute), "refused: 420"},
		{"another transaction", build(t, other, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.ParseIP("192.0.2.1"), Port: 1}), errNotOurs.Error()},
		{"not stun", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), errNotOurs.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := stunMappedAddr(tc.msg, txid)
			got := a.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if want, perr := netip.ParseAddr(tc.want); perr == nil && a != want {
				t.Fatalf("got %v, want %v", a, want)
			}
		})
	}
}

func FuzzSTUNAnswer(f *testing.F) {
	var txid [12]byte
	m, _ := stun.Build(stun.NewTransactionIDSetter(txid), stun.BindingSuccess, &stun.XORMappedAddress{IP: net.ParseIP("192.0.2.1"), Port: 1}, stun.Fingerprint)
	f.Add(m.Raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = stunMappedAddr(b, txid)
	})
}
