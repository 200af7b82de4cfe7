package deploy

import (
	"crypto/x509"
	"fmt"
)

// Judge compares a handshake's served leaf with the certificate that
// should be served and sets Outcome, Reason and ExpectedSerial. Verify
// calls it; `ipcert verify` calls it itself after the handshake, because
// which stored certificate to expect may depend on what was served
// (store.Find with Query.Served). An unreachable result stays as it is.
func Judge(res *VerifyResult, expected *x509.Certificate) {
	if res.Outcome == Unreachable || res.Leaf == nil {
		return
	}
	res.ExpectedSerial = ""
	if expected != nil {
		res.ExpectedSerial = fmt.Sprintf("%x", expected.SerialNumber)
	}
	leaf := res.Leaf
	switch {
	case expected == nil:
		res.Outcome = Unchecked
		res.Reason = "no stored certificate to compare with"
	case leaf.Equal(expected):
		res.Outcome = Match
		res.Reason = fmt.Sprintf("%s serves the stored current certificate (serial %s)", res.Addr, res.ExpectedSerial)
	default:
		res.Outcome = Mismatch
		served := fmt.Sprintf("%x", leaf.SerialNumber)
		why := "reload the web server so it reads the current files (ipcert snippet shows the config)"
		if leaf.NotBefore.Before(expected.NotBefore) {
			why = "it is older than the stored one: " + why
		}
		res.Reason = fmt.Sprintf("%s serves serial %s, not the stored current %s; %s", res.Addr, served, res.ExpectedSerial, why)
	}
}
