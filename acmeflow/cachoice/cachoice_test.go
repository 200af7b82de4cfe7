package cachoice

import (
	"testing"

	"github.com/ipcert/ipcert/internal/spec"
)

// TestPublicOnlyForLetsEncrypt: Let's Encrypt's address policy applies to
// Let's Encrypt only; a private CA on any address (step-ca for internal
// services) certifies private addresses.
func TestPublicOnlyForLetsEncrypt(t *testing.T) {
	for choice, want := range map[spec.CAChoice]bool{
		Staging:    true,
		Production: true,
		"https://acme-v02.api.letsencrypt.org/directory":         true,
		"https://acme-staging-v02.api.letsencrypt.org/directory": true,
		"https://ACME-V02.API.LETSENCRYPT.ORG./directory":        true,
		"https://10.77.0.1:9000/acme/acme/directory":             false,
		"https://ca.internal.example:9000/acme/acme/directory":   false,
		"https://127.0.0.1:14000/dir":                            false,
		"https://[::1]:14000/dir":                                false,
		"https://letsencrypt.org.evil.example/dir":               false,
	} {
		ca, err := Open(choice, Options{})
		if err != nil {
			t.Fatalf("%s: %v", choice, err)
		}
		if ca.Public != want {
			t.Errorf("%s: Public=%v, want %v", choice, ca.Public, want)
		}
	}
}
