package deploy

import (
	"context"
	"crypto/x509"
	"time"
)

// ReloadGrace bounds how long a check after a reload waits for the server
// to serve the new certificate. Debian's `systemctl reload nginx` (and
// apache2's, haproxy's) returns once the master has the signal, before
// new workers serve: the old certificate is seen for up to a second or
// two afterwards, more on a loaded machine.
const ReloadGrace = 15 * time.Second

// WaitServed is Verify repeated until addr serves expected, or until
// grace has passed (0: ReloadGrace), or ctx ends: right after a reload a
// mismatch or a refused connection only means "not yet". It returns the
// last result and how long it took to reach it.
func WaitServed(ctx context.Context, addr string, expected *x509.Certificate, grace time.Duration, opts VerifyOptions) (VerifyResult, time.Duration, error) {
	if grace <= 0 {
		grace = ReloadGrace
	}
	opts.Expected = expected
	if opts.Timeout <= 0 || opts.Timeout > grace {
		opts.Timeout = grace
	}
	start := time.Now()
	deadline := start.Add(grace)
	gap := 50 * time.Millisecond
	matches := 0
	for {
		res, err := Verify(ctx, addr, opts)
		if err != nil || res.Outcome == Unchecked {
			return res, time.Since(start), err
		}
		// One new worker serving the new certificate is not enough: old
		// ones that have not yet seen the reload still accept for a
		// moment (seen with nginx). Three matches in a row, 100 ms apart.
		if res.Outcome == Match {
			if matches++; matches >= 3 {
				return res, time.Since(start), nil
			}
			gap = 100 * time.Millisecond
		} else {
			matches = 0
		}
		wait := min(gap, time.Until(deadline))
		if wait <= 0 {
			return res, time.Since(start), nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, time.Since(start), nil
		case <-t.C:
		}
		if matches == 0 {
			gap = min(gap*2, 500*time.Millisecond)
		}
	}
}
