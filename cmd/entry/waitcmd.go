package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/supervise"
)

// waitCommandBackoff paces the attempts of ENTRY_WAIT_COMMAND while the release lock is free:
// each attempt of `manage.py migrate --check` boots Django (seconds of CPU), so the pace
// slows down to one every 30 s. The end of another replica's release skips the rest of the
// pause: that is the moment the command has a reason to succeed.
var waitCommandBackoff = readiness.Backoff{Initial: time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 0.2}

// watchEvery paces the look at the release lock; reportEvery, the line saying it is held.
const (
	watchEvery  = time.Second
	reportEvery = 30 * time.Second
)

var errWaitCommandTimeout = errors.New("ENTRY_WAIT_TIMEOUT reached")

// waitCommand runs ENTRY_WAIT_COMMAND until it exits 0, never while another replica holds the
// release lock; it returns entry's exit status and whether to go on.
func (e *entry) waitCommand(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal) (int, bool) {
	c := e.plan.WaitCommand
	if c == nil {
		return 0, true
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, errWaitCommandTimeout)
		defer cancel()
	}
	var w *release.Watcher
	if c.Lock != nil {
		var err error
		if w, err = release.NewWatcher(c.Lock.DSN, c.Lock.Key, strings.TrimSpace("entry wait "+hostname()), e.plan.Wait.Options.AttemptTimeout); err != nil {
			e.log.Error(err.Error())
			return exitConfig, false
		}
		defer w.Close()
	}
	shown := redact.Command(c.Command, c.Secrets...)
	start := time.Now()
	next, last := time.Time{}, 0
	for attempt := 1; ; attempt++ {
		ictx, stop := untilStop(ctx, sigs, e.log)
		err := e.untilFree(ictx, w, next)
		if s := stop(); s != 0 {
			e.log.Info("stopped before the wait command succeeded", "signal", supervise.SignalName(s))
			return supervise.Status(s), false
		}
		if err != nil {
			e.log.Error("wait command did not succeed in time: no process is started", "cmd", shown,
				"attempts", attempt-1, "last_status", last, "timeout", c.Timeout, "err", err)
			return exitUnavailable, false
		}
		e.log.Info("wait command start", "cmd", shown, "attempt", attempt)
		cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
		cmd.Env = e.environ
		t := time.Now()
		res, status, err := e.runMain(ctx, reaper, sigs, "wait", cmd, 0)
		took := time.Since(t).Round(time.Millisecond)
		switch {
		case err == nil && res.StopSignal != nil:
			e.log.Info("stopped during the wait command: no process is started", "status", status)
			return status, false
		case err == nil && status == 0:
			e.log.Info("wait command done", "attempt", attempt, "duration", took, "waited", time.Since(start).Round(time.Millisecond))
			return 0, true
		case errors.As(err, new(*supervise.StartError)):
			e.log.Error("wait command could not start", "cmd", shown, "status", status, "err", err)
			return status, false
		}
		last = status
		delay := waitCommandBackoff.Delay(attempt, rand.Float64())
		next = time.Now().Add(delay)
		e.log.Warn("wait command failed, retrying", "status", status, "attempt", attempt, "duration", took, "retry_in", delay.Round(time.Millisecond))
	}
}

// untilFree returns once the release lock is free and next has passed, or at once when the
// lock has just been given up by another replica. It returns ctx's cause when ctx ends.
func (e *entry) untilFree(ctx context.Context, w *release.Watcher, next time.Time) error {
	var busySince, reported time.Time
	state := ""
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		pause := time.Until(next)
		if w != nil {
			busy, err := w.Busy(ctx)
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case err != nil:
				// Unknown counts as held: the command never runs unseen.
				if s := readiness.State(err); s != state {
					state = s
					e.log.Warn("cannot see the release lock; the wait command waits", "target", w.Target(), "err", err)
				}
				busy = true
			case state != "":
				state = ""
			}
			if busy {
				if busySince.IsZero() {
					busySince = time.Now()
				}
				if time.Since(reported) >= reportEvery {
					reported = time.Now()
					e.log.Info("release lock held by another replica: the wait command waits for its release", "target", w.Target(),
						"waited", time.Since(busySince).Round(time.Second))
				}
				pause = watchEvery*3/4 + rand.N(watchEvery/2)
			} else if !busySince.IsZero() {
				e.log.Info("release lock given up by its holder", "held_for_at_least", time.Since(busySince).Round(time.Second))
				return nil
			} else if pause <= 0 {
				return nil
			} else {
				pause = min(pause, watchEvery*3/4+rand.N(watchEvery/2))
			}
		} else if pause <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pause):
		}
	}
}
