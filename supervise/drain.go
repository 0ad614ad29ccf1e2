package supervise

import (
	"log/slog"
	"syscall"
	"time"
)

// drain is the shutdown delay of one run: on the orchestrator's SIGTERM,
// entry reports itself not ready at once and holds the stop signals back
// for delay, so that a load balancer or a Kubernetes endpoint stops
// sending traffic while the processes still serve it. A person's INT or
// QUIT does not wait, and any stop signal during the delay ends it.
//
// It is not safe for concurrent use: the loop that reads the signals owns
// it. The zero value (no delay) never holds a stop.
type drain struct {
	delay  time.Duration
	health *Health
	log    *slog.Logger
	after  func(time.Duration) <-chan time.Time // time.After, or a test's clock

	// C fires when the delay is over; nil while no delay runs, so that a
	// select on it waits forever.
	C     <-chan time.Time
	until time.Time
	done  bool // the delay ran (or was skipped) once: it never runs again
}

func newDrain(delay time.Duration, h *Health, log *slog.Logger) *drain {
	return &drain{delay: delay, health: h, log: log, after: time.After}
}

// hold decides what a stop signal does while no stop signal has gone out:
// true means the stop waits for C; false means stop now. Only SIGTERM
// starts the delay; a stop signal during it ends it, and is logged so.
func (d *drain) hold(sig syscall.Signal) bool {
	switch {
	case d.C != nil:
		left := time.Until(d.until).Round(time.Millisecond)
		d.end()
		d.log.Info("shutdown delay skipped: stopping now", "signal", SignalName(sig), "left", max(left, 0))
		return false
	case d.done || d.delay <= 0 || sig != syscall.SIGTERM:
		return false
	}
	d.done = true
	d.until = time.Now().Add(d.delay)
	d.C = d.after(d.delay)
	d.health.SetPhase("draining")
	d.log.Info("shutdown delay: not ready, the processes keep running until the stop signals go out",
		"delay", d.delay, "skip", "SIGTERM again or SIGINT")
	return true
}

// end stops the delay, if it runs: its time is over, or the stop comes
// from elsewhere (a failed process, a cancelled context). Health then says
// stopping, as the stop signals go out.
func (d *drain) end() {
	if d.C != nil {
		d.C = nil
		d.health.SetPhase("stopping")
	}
}
