//go:build !(linux && (amd64 || arm64))

package supervise

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// catchable: catchReserved installs no handler here, so os/signal takes
// every signal it can.
func catchable(syscall.Signal, *unix.Sigset_t) bool { return false }

// catchReserved has no handler of its own to install here: the signals Go
// cannot catch keep the kernel's default.
func catchReserved(chan<- os.Signal, []syscall.Signal) error { return nil }
