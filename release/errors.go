package release

import "errors"

var (
	// ErrLockLost means the session holding the advisory lock ended (terminated,
	// server restart, network) while steps were running or about to run.
	ErrLockLost = errors.New("release lock lost")

	// ErrLockTimeout means another session held the lock for longer than
	// LockOptions.Timeout.
	ErrLockTimeout = errors.New("timed out waiting for the release lock")

	// ErrUnavailable means the lock's connection could not be established
	// within LockOptions.ConnectTimeout: the database never came.
	ErrUnavailable = errors.New("database unavailable")
)

// ExitLockLost is Run's status when the lock is lost: EX_TEMPFAIL from
// sysexits.h, "try again later". The orchestrator restarts the container and the
// steps run again under a fresh lock; migrate is safe to repeat.
const ExitLockLost = 75

// ExitUnavailable is EX_UNAVAILABLE from sysexits.h, entry's status when a
// dependency did not come in time or refused it for good.
const ExitUnavailable = 69

// ExitStatus is entry's exit status for an error from Acquire or Run: 75
// (ExitLockLost) when the lock's session was lost, at any point (while
// waiting for the lock and not back in time, or during a step), so that the
// orchestrator tries again; 69 (ExitUnavailable) when the database never
// came or refused for good, or the lock was held by another replica for
// longer than the lock timeout; 0 for nil.
func ExitStatus(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrLockLost):
		return ExitLockLost
	}
	return ExitUnavailable
}
