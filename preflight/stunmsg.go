package preflight

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// STUN, as much of it as asking "which address do you see?" needs
// (RFC 8489): a Binding request with a FINGERPRINT, and the mapped address
// out of the success response. A library for this would bring a DTLS stack
// into the binary for one 28-byte message.

const (
	stunHeaderLen     = 20
	stunMagicCookie   = 0x2112A442
	stunBindingReq    = 0x0001
	stunBindingOK     = 0x0101
	stunBindingErr    = 0x0111
	stunAttrMapped    = 0x0001
	stunAttrXORMapped = 0x0020
	stunAttrErrorCode = 0x0009
	stunAttrFinger    = 0x8028
	stunFingerXOR     = 0x5354554e // "STUN" (RFC 8489 section 14.7)
)

// stunRequest is a Binding request with a fresh transaction ID.
func stunRequest() (msg []byte, txid [12]byte, err error) {
	if _, err := rand.Read(txid[:]); err != nil {
		return nil, txid, err
	}
	msg = make([]byte, stunHeaderLen+8)
	binary.BigEndian.PutUint16(msg[0:], stunBindingReq)
	binary.BigEndian.PutUint16(msg[2:], 8) // the FINGERPRINT attribute
	binary.BigEndian.PutUint32(msg[4:], stunMagicCookie)
	copy(msg[8:20], txid[:])
	binary.BigEndian.PutUint16(msg[20:], stunAttrFinger)
	binary.BigEndian.PutUint16(msg[22:], 4)
	// The CRC covers the message up to the attribute, with the length
	// already counting it.
	binary.BigEndian.PutUint32(msg[24:], crc32.ChecksumIEEE(msg[:20])^stunFingerXOR)
	return msg, txid, nil
}

// errNotOurs is a datagram that is not the answer to our request (another
// transaction, or not STUN): wait for the next one.
var errNotOurs = errors.New("not the answer to this request")

// stunMappedAddr reads the address a server saw from its answer to the
// request with txid: XOR-MAPPED-ADDRESS, else the older MAPPED-ADDRESS.
func stunMappedAddr(b []byte, txid [12]byte) (netip.Addr, error) {
	if len(b) < stunHeaderLen || binary.BigEndian.Uint32(b[4:]) != stunMagicCookie || [12]byte(b[8:20]) != txid {
		return netip.Addr{}, errNotOurs
	}
	typ, n := binary.BigEndian.Uint16(b[0:]), int(binary.BigEndian.Uint16(b[2:]))
	if n%4 != 0 || stunHeaderLen+n > len(b) {
		return netip.Addr{}, fmt.Errorf("bad STUN answer: length %d for %d bytes", n, len(b)-stunHeaderLen)
	}
	attrs := b[stunHeaderLen : stunHeaderLen+n]
	var mapped, xorMapped, errCode []byte
	for len(attrs) >= 4 {
		at, al := binary.BigEndian.Uint16(attrs[0:]), int(binary.BigEndian.Uint16(attrs[2:]))
		if 4+al > len(attrs) {
			return netip.Addr{}, fmt.Errorf("bad STUN answer: attribute 0x%04x runs past the message", at)
		}
		v := attrs[4 : 4+al]
		switch at {
		case stunAttrMapped:
			mapped = v
		case stunAttrXORMapped:
			xorMapped = v
		case stunAttrErrorCode:
			errCode = v
		}
		next := 4 + (al+3)&^3 // values are padded to 4 bytes
		if next > len(attrs) {
			break
		}
		attrs = attrs[next:]
	}
	switch typ {
	case stunBindingOK:
	case stunBindingErr:
		if len(errCode) >= 4 {
			return netip.Addr{}, fmt.Errorf("the STUN server refused: %d %s", int(errCode[2]&7)*100+int(errCode[3]), untrusted.Text(string(errCode[4:])))
		}
		return netip.Addr{}, errors.New("the STUN server refused the request")
	default:
		return netip.Addr{}, errNotOurs
	}
	if xorMapped != nil {
		return stunAddr(xorMapped, b[4:20])
	}
	if mapped != nil {
		return stunAddr(mapped, nil)
	}
	return netip.Addr{}, errors.New("no mapped address in the STUN answer")
}

// stunAddr decodes a (XOR-)MAPPED-ADDRESS value; key is the magic cookie
// and transaction ID the XOR form is masked with, nil for the plain one.
func stunAddr(v, key []byte) (netip.Addr, error) {
	if len(v) < 4 {
		return netip.Addr{}, errors.New("bad STUN answer: short address attribute")
	}
	var ip []byte
	switch v[1] {
	case 0x01:
		ip = make([]byte, 4)
	case 0x02:
		ip = make([]byte, 16)
	default:
		return netip.Addr{}, fmt.Errorf("bad STUN answer: address family 0x%02x", v[1])
	}
	if len(v) < 4+len(ip) {
		return netip.Addr{}, errors.New("bad STUN answer: short address attribute")
	}
	copy(ip, v[4:])
	for i := range ip {
		if key != nil {
			ip[i] ^= key[i]
		}
	}
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap(), nil
}
