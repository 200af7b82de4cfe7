// Package realsys holds tests of the built ipcert binary on real systems
// that a unit test cannot fake: a Debian system booted with systemd under
// systemd-nspawn (the renewal timer, nginx.service, cron). It has no code
// of its own; see the _test.go files. The tests need root,
// systemd-container and debootstrap (scripts/rootfs builds and caches the
// Debian rootfs); they skip with a message elsewhere and fail when
// CI=true.
package realsys
