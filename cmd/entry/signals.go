package main

import (
	"context"
	"log/slog"
	"os"
	"syscall"

	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// forwardable is every signal entry catches: all but SIGKILL/SIGSTOP, SIGCHLD (the reaper's,
// on its own channel so a burst of exits cannot crowd out a SIGTERM) and SIGURG (the Go
// runtime's preemption signal, which must never reach a child).
func forwardable() []os.Signal {
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		switch s := syscall.Signal(n); s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
		case 32, 33: // reserved by the C library for its threads
		default:
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// stopping reports whether a signal asks entry to stop rather than to be forwarded.
func stopping(s os.Signal) bool {
	switch s {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP:
		return true
	}
	return false
}

// untilStop returns a context cancelled by the first stop signal read from sigs, and a
// function that stops reading and tells which signal it was (0 if none). Between phases
// exactly one reader owns sigs, whose signals are all syscall.Signals (see forwardable).
func untilStop(ctx context.Context, sigs <-chan os.Signal, log *slog.Logger) (context.Context, func() syscall.Signal) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	got := make(chan syscall.Signal, 1)
	go func() {
		defer close(got)
		for {
			select {
			case s := <-sigs:
				if stopping(s) {
					got <- s.(syscall.Signal)
					cancel()
					return
				}
				log.Debug("signal ignored: no process is running yet", "signal", supervise.SignalName(s.(syscall.Signal)))
			case <-done:
				return
			}
		}
	}()
	return ctx, func() syscall.Signal {
		close(done)
		cancel()
		return <-got
	}
}
