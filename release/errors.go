package release

import "errors"

var (
	// ErrLockLost means the session holding the advisory lock ended (terminated,
	// server restart, network) while steps were running or about to run.
	ErrLockLost = errors.New("release lock lost")

	// ErrLockTimeout means another session held the lock for longer than
	// LockOptions.Timeout.
	ErrLockTimeout = errors.New("timed out waiting for the release lock")
)

// ExitLockLost is Run's status when the lock is lost: EX_TEMPFAIL from
// sysexits.h, "try again later". The orchestrator restarts the container and the
// steps run again under a fresh lock; migrate is safe to repeat.
const ExitLockLost = 75
