package supervise

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file is the one place that decides what each signal means to entry.

// Action is what entry does with a signal it caught.
type Action int

const (
	// Ignore: the signal is entry's own business. SIGCHLD is the reaper's
	// (on its own channel). SIGURG is the Go runtime preempting its own
	// goroutines, sent by entry to itself. SIGPIPE is what entry gets for
	// writing to a closed pipe; passing it on would kill the application
	// for entry's own broken stderr. Before any process runs, every
	// signal that does not stop entry is ignored too.
	Ignore Action = iota
	// Forward: the signal goes to the processes (TERM translated to each
	// process's stop signal).
	Forward
	// Stop: the signal asks entry to stop.
	Stop
)

// Classify says what entry does with s. running is whether a process
// (release step, main process or Procfile group) is there to receive it.
//
// TERM from the orchestrator, INT from Ctrl-C or docker's signal proxy and
// QUIT for a quick stop always stop. HUP stops only while nothing runs (the
// terminal went away during the wait); once processes run it is theirs
// (gunicorn reloads on it).
func Classify(s os.Signal, running bool) Action {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return Ignore
	}
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		return Stop
	case unix.SIGHUP:
		if !running {
			return Stop
		}
	case unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE:
		return Ignore
	}
	if !running {
		return Ignore
	}
	return Forward
}

// translate turns the orchestrator's generic stop request (SIGTERM) into
// the stop signal the program wants (nginx QUIT, uwsgi INT). Every other
// signal, INT and QUIT included, was chosen by a person and goes through as
// sent.
func translate(s syscall.Signal, stop syscall.Signal) syscall.Signal {
	if s == syscall.SIGTERM {
		return stop
	}
	return s
}

// Status is the exit status a shell reports for a process killed by sig,
// 128+N: the one place entry computes it.
func Status(sig syscall.Signal) int { return 128 + int(sig) }

// signalOfStatus is the inverse of Status: the signal a shell's status
// 128+N names, or 0.
func signalOfStatus(code int) syscall.Signal {
	if code > 128 && code <= 128+maxSignal {
		return syscall.Signal(code - 128)
	}
	return 0
}

// maxSignal is the highest signal number on Linux (SIGRTMAX).
const maxSignal = 64

// ParseStopSignal reads a stop signal as users write it: TERM, SIGTERM,
// sigquit or 15. KILL and STOP cannot be caught, so a program gets no
// chance to stop cleanly; CHLD and URG are never forwarded.
func ParseStopSignal(s string) (syscall.Signal, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	var sig syscall.Signal
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > maxSignal {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		sig = syscall.Signal(n)
	} else {
		if !strings.HasPrefix(s, "SIG") {
			s = "SIG" + s
		}
		if sig = unix.SignalNum(s); sig == 0 {
			return 0, fmt.Errorf("unknown signal %q", strings.TrimPrefix(s, "SIG"))
		}
	}
	switch sig {
	case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
		return 0, fmt.Errorf("%s cannot be a stop signal", SignalName(sig))
	}
	return sig, nil
}

// Notify relays to c every signal entry handles: every catchable one but
// SIGCHLD, which the reaper reads on its own channel so that a burst of
// exits cannot crowd out a SIGTERM, and SIGURG, which the Go runtime sends
// itself by the thousand to preempt goroutines and which would crowd c. c should be buffered generously. Call
// it once, before any child starts: a signal with no handler is dropped by
// the kernel when entry is PID 1, and kills entry when it is not.
//
// Go's os/signal cannot catch four of them, and Notify catches those
// itself (see catchReserved): signals 32 and 34, which the runtime leaves
// to the C library (glibc's SIGCANCEL, musl's SIGSYNCCALL) and so never
// gives a handler, even when asked; and SIGPROF, which its handler always
// takes for its own profiler. Signal 33 stays the runtime's: it is how Go
// makes setuid apply to every thread, and a 33 sent to entry is lost.
//
// The realtime signals 35 to 64, which the runtime never uses, go through
// that same handler where there is one: os/signal enables each signal with
// a round trip to the runtime's signal thread, and those thirty took
// ≈0.6 ms of entry's start (one rt_sigaction each instead). A realtime
// signal that entry's threads block (inherited from its parent) stays with
// os/signal, whose thread unblocks it; the handler alone would leave it
// pending forever.
func Notify(c chan<- os.Signal) error {
	var sigs []os.Signal
	caught := []syscall.Signal{32, 34, unix.SIGPROF}
	// Every thread has the mask entry was started with, less what Go unblocks.
	var blocked unix.Sigset_t
	maskKnown := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &blocked) == nil
	for n := syscall.Signal(1); n <= maxSignal; n++ {
		switch {
		case n == unix.SIGKILL, n == unix.SIGSTOP, n == unix.SIGCHLD, n == unix.SIGURG:
		case n >= 35 && maskKnown && catchable(n, &blocked):
			caught = append(caught, n)
		default:
			sigs = append(sigs, n)
		}
	}
	signal.Notify(c, sigs...)
	return catchReserved(c, caught)
}

// withEmptyMask runs start, which forks, on a thread whose signal mask is
// empty. os/exec gives the child the mask of the thread that forks, and
// Go's threads keep whatever mask entry itself was started with, so a
// signal blocked by entry's parent (catatonit blocks TSTP, TTIN and TTOU)
// would stay blocked in the application, and a TTIN meant for gunicorn
// would wait forever. The thread is locked so no other goroutine runs with
// the mask meanwhile; every signal has a Go handler, so unblocking is safe.
func withEmptyMask(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var empty, old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, &old); err != nil {
		return fmt.Errorf("clear signal mask: %w", err)
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return start()
}
