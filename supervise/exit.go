package supervise

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended. Signal is non-zero when a signal killed it.
type Exit struct {
	Pid    int
	Code   int
	Signal syscall.Signal
	Cause  string // why a SIGKILL entry did not send came: OOMWatch.DeathCause
}

// Status is the exit status a shell would report: the code, or 128+N when
// signal N killed the process.
func (e Exit) Status() int {
	if e.Signal != 0 {
		return Status(e.Signal)
	}
	return e.Code
}

func (e Exit) String() string {
	s := fmt.Sprintf("exited with status %d", e.Code)
	if e.Signal != 0 {
		s = "killed by " + SignalName(e.Signal)
	}
	if e.Cause != "" {
		s += ": " + e.Cause
	}
	return s
}

func exitOf(pid int, ws unix.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Pid: pid, Signal: syscall.Signal(ws.Signal())}
	}
	return Exit{Pid: pid, Code: ws.ExitStatus()}
}

// SignalName gives "SIGTERM" rather than Go's "terminated", the name users
// type in kill(1) and in ENTRY_STOP_SIGNAL.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}
