package supervise

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwardable reports whether a signal read from the catch-all channel is
// meant for the main process. SIGCHLD is the reaper's business. SIGURG is
// the Go runtime preempting its own goroutines, sent by entry to itself.
// SIGPIPE is what entry gets for writing to a closed pipe; passing it on
// would kill the application for entry's own broken stderr.
func forwardable(s os.Signal) bool {
	switch s {
	case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPIPE:
		return false
	}
	_, ok := s.(syscall.Signal)
	return ok
}

// stopping reports whether s asks entry to stop: TERM from the orchestrator,
// INT from Ctrl-C or docker's signal proxy, QUIT for a quick stop.
func stopping(s os.Signal) bool {
	switch s {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
		return true
	}
	return false
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
