package supervise

import "time"

// Restart policies.
const (
	RestartNever     = "never"      // the first exit stops everything, as honcho does
	RestartOnFailure = "on-failure" // restart after a non-zero status or a signal
	RestartAlways    = "always"     // restart after any exit
)

// Restart defaults, used for zero fields.
const (
	DefaultRestartLimit   = 5
	DefaultRestartWindow  = 60 * time.Second
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 30 * time.Second
)

// Restart says when a process that exited is started again.
//
// The n-th restart in a row waits Initial·2^(n-1), at most Max, plus up to
// 10% jitter so that replicas that crashed together do not restart in step.
// A process that stayed up for Max or longer starts again from Initial.
// More than Limit restarts within Window is a crash loop: entry gives up and
// stops everything. With the defaults (5 in 60 s, 1 s doubling to 30 s) a
// process that fails at once forever is restarted at about 1, 3, 7, 15 and
// 31 s, and its sixth exit stops entry within about 34 s. In general the
// bound is the sum of the first Limit delays plus 10%.
//
// Zero durations take the defaults above, and an empty Policy is
// on-failure. Limit is used as given: 0 allows no restart at all, and a
// negative Limit means no limit.
type Restart struct {
	Policy       string
	Limit        int
	Window       time.Duration
	Initial, Max time.Duration
}

func (r Restart) withDefaults() Restart {
	if r.Policy == "" {
		r.Policy = RestartOnFailure
	}
	if r.Window <= 0 {
		r.Window = DefaultRestartWindow
	}
	if r.Initial <= 0 {
		r.Initial = DefaultBackoffInitial
	}
	if r.Max <= 0 {
		r.Max = DefaultBackoffMax
	}
	r.Max = max(r.Max, r.Initial)
	return r
}

// wants reports whether the policy restarts a process that ended with e.
func (r Restart) wants(e Exit) bool {
	switch r.Policy {
	case RestartAlways:
		return true
	case RestartOnFailure, "":
		return e.Status() != 0
	}
	return false
}

// backoff is the delay before the n-th restart in a row (n >= 1); jitter in
// [0, 1) adds up to 10%.
func backoff(initial, limit time.Duration, n int, jitter float64) time.Duration {
	d := initial
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d + time.Duration(float64(d)*jitter/10)
}

// history is the restart record of one process. It keeps only what decides
// the next restart: the restarts in a row, and those within the window.
type history struct {
	inRow int
	times []time.Time
}

// decision is what to do after an exit.
type decision struct {
	restart  bool
	delay    time.Duration
	crashing bool // restart wanted, but the crash-loop limit is reached
}

// next decides about a process that ran for uptime and ended with e at now.
func (h *history) next(r Restart, e Exit, uptime time.Duration, now time.Time, jitter float64) decision {
	if !r.wants(e) {
		return decision{}
	}
	if uptime >= r.Max {
		h.inRow = 0
	}
	kept := h.times[:0]
	for _, t := range h.times {
		if now.Sub(t) < r.Window {
			kept = append(kept, t)
		}
	}
	h.times = kept
	if r.Limit >= 0 && len(h.times) >= r.Limit {
		return decision{crashing: true}
	}
	h.inRow++
	h.times = append(h.times, now)
	return decision{restart: true, delay: backoff(r.Initial, r.Max, h.inRow, jitter)}
}
