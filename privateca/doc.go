// Package privateca holds tests of the built ipcert binary against a real
// private ACME CA that nobody on the project wrote: smallstep's step-ca,
// the most used CA for internal and private addresses. Its directory has
// no meta.profiles and no ARI, it issues with its own validity, and it
// certifies private addresses: the engine must order from it the way its
// users expect. It has no code of its own; see the _test.go files.
//
// step-ca is built once per machine from the Go module proxy into
// /var/cache/ipcert-test/step-ca and reused; the tests skip with a message
// where it cannot be built or run (no root for the namespace test) and
// fail when CI=true.
package privateca
