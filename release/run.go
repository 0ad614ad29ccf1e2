package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/entry-dev/entry/internal/redact"
)

// Step is one release command, e.g. {Name: "release.1", Command: "python manage.py migrate --noinput"}.
type Step struct {
	Name    string
	Command string // the user's command line, as written
	// Secrets are known secret values (passwords of the configured
	// dependencies): in the logged command line, a word equal to one is
	// masked (see redact.Command, which masks by structure besides).
	Secrets []string
}

// Run runs steps in order, holding lock (nil: no lock) across all of them. run
// executes one step and returns its exit status; the ctx it gets is cancelled the
// moment the lock is lost, and run must then stop the step.
//
// Run returns 0 and nil when every step succeeded. Otherwise it returns a non-zero
// status and an error saying why:
//   - a step failed: that step's status (1 if run returned an error with status 0),
//     and the later steps do not run;
//   - the lock was lost: ExitLockLost, whatever the step's own status, with an error
//     wrapping ErrLockLost;
//   - ctx was cancelled before a step could start: 1, with an error wrapping
//     ctx's cause. A step that was running when ctx ended reports its own status
//     (typically 128+N for the stop signal N).
func Run(ctx context.Context, lock *Lock, steps []Step, run func(ctx context.Context, s Step) (int, error), log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if lock != nil {
		go func() {
			select {
			case <-lock.Lost():
				cancel(lock.cause())
			case <-ctx.Done():
			}
		}()
	}

	// lost reads the lock's state itself: the goroutine above may not have passed a loss on
	// yet, and a step must not start on a lock already gone.
	lost := func() error {
		if lock != nil {
			select {
			case <-lock.Lost():
				return lock.cause()
			default:
			}
		}
		return context.Cause(ctx)
	}
	for _, s := range steps {
		if cause := lost(); cause != nil {
			if errors.Is(cause, ErrLockLost) {
				return ExitLockLost, fmt.Errorf("release step %s not started: %w", s.Name, cause)
			}
			return 1, fmt.Errorf("release step %s not started: %w", s.Name, cause)
		}
		log.Info("release step start", "step", s.Name, "cmd", redact.Command(s.Command, s.Secrets...))
		start := time.Now()
		status, err := run(ctx, s)
		took := time.Since(start).Round(time.Millisecond)

		if cause := lost(); errors.Is(cause, ErrLockLost) {
			log.Error("release step stopped: lock lost", "step", s.Name, "status", status, "duration", took)
			return ExitLockLost, fmt.Errorf("release step %s: %w", s.Name, cause)
		}
		if err != nil || status != 0 {
			if status == 0 {
				status = 1
			}
			if err != nil {
				log.Error("release step failed", "step", s.Name, "status", status, "duration", took, "err", err)
				return status, fmt.Errorf("release step %s: %w", s.Name, err)
			}
			log.Error("release step failed", "step", s.Name, "status", status, "duration", took)
			return status, fmt.Errorf("release step %s: exit status %d", s.Name, status)
		}
		log.Info("release step done", "step", s.Name, "status", status, "duration", took)
	}
	return 0, nil
}
