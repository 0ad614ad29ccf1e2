package main

import (
	"context"
	"log/slog"
	"os"
	"syscall"

	"github.com/entry-dev/entry/supervise"
)

// untilStop returns a context cancelled by the first stop signal read from sigs, and a
// function that stops reading and tells which signal it was (0 if none). Between phases
// exactly one reader owns sigs; supervise.Classify says which signals stop while no process
// runs.
func untilStop(ctx context.Context, sigs <-chan os.Signal, log *slog.Logger) (context.Context, func() syscall.Signal) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	got := make(chan syscall.Signal, 1)
	go func() {
		defer close(got)
		for {
			select {
			case s := <-sigs:
				sig, _ := s.(syscall.Signal)
				if supervise.Classify(s, false) == supervise.Stop {
					got <- sig
					cancel()
					return
				}
				log.Debug("signal ignored: no process is running yet", "signal", supervise.SignalName(sig))
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
