package readiness

import (
	"errors"
	"syscall"
	"time"
)

// Free reports whether err is a failure that cost the dependency nothing:
// a kernel, not the server, said no (nothing listens on the port, or there
// is no route to it). Probing again soon is harmless, and it is what makes
// entry see a server within a few milliseconds of its socket opening.
// Answers of a running server ("starting up", LOADING, 503) and timeouts
// are not free: the server did work, or may be too busy to answer.
func Free(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.EHOSTUNREACH)
}

// Schedule decides the pause between two attempts on one dependency.
//
// After a free failure (see Free) the pause is Free, jittered by
// Backoff.Jitter: a refused port is probed about fifty times a second, at a
// cost of one SYN and one RST. After failures the server had to answer, or
// that timed out, the pause backs off: the first one of a row still gets
// the short pause (a server that has just opened its port is usually done
// starting a few milliseconds later: Postgres answers 57P03 for 10–20 ms
// after a clean start), the next ones Backoff's capped, jittered, growing
// delays. The jitter keeps replicas that poll one server spread out.
type Schedule struct {
	Free    time.Duration
	Backoff Backoff
}

// Pause returns the pause before the next attempt. answered is the number
// of consecutive failures that were not free, the last one included (0 when
// the last failure was free); rnd is a number in [0,1) (the caller supplies
// the randomness). Pause is pure. It never exceeds Backoff.Max when that is
// set.
func (s Schedule) Pause(answered int, rnd float64) time.Duration {
	if answered <= 1 {
		short := Backoff{Initial: s.Free, Max: s.Backoff.Max, Factor: 1, Jitter: s.Backoff.Jitter}
		return short.Delay(1, rnd)
	}
	return s.Backoff.Delay(answered-1, rnd)
}
