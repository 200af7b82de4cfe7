// Package reliability holds the tests that measure how the built ipcert
// binary behaves under faults, bad input, crashes and load (issue: the
// reliability table in the README). They run the real binary as a
// subprocess, because exit codes, signals and file modes only mean
// something for a real process. scripts/reliability runs them and prints
// the figures.
package reliability
