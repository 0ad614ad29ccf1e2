//go:build !(linux && (amd64 || arm64))

package supervise

import (
	"os"
	"syscall"
)

// catchReserved has no handler of its own to install here: the signals Go
// cannot catch keep the kernel's default.
func catchReserved(chan<- os.Signal, []syscall.Signal) error { return nil }
