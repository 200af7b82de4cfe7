// Package boulderca holds tests of the built ipcert binary against
// Boulder, the CA software Let's Encrypt runs (internal/boulder brings it
// up in a network namespace of its own). Pebble, the quick CA of the other
// tests, is a stand-in; Boulder enforces what Let's Encrypt enforces: the
// IANA special-purpose registries, no IP identifier in the default
// profile, at least three remote perspectives with a quorum, rate limits
// with Retry-After, ARI, and the certificate's exact shape (empty subject,
// IP SANs only, 160 hours, embedded SCTs). It has no code of its own; see
// the _test.go files.
//
// The tests skip with a message where Boulder cannot be prepared or run
// (no root for the namespace, a missing Debian package) and fail when
// CI=true, whose .ci/run installs and builds everything.
package boulderca
