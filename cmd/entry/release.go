package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"

	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/supervise"
)

// command builds the exec.Cmd of a release step: a direct exec when it has no shell syntax,
// /bin/sh -c "exec ..." otherwise (see procfile.Argv).
func (e *entry) command(line string) *exec.Cmd {
	argv, _ := procfile.Argv(line)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.environ
	return cmd
}

// errStopped ends the release sequence after a step that entry was asked to stop.
var errStopped = errors.New("stopped by a signal")

// release runs the release steps; it returns entry's exit status and whether to go on.
func (e *entry) release(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal) (int, bool) {
	var lock *release.Lock
	if pl := e.plan.Release.Lock; pl != nil {
		lctx, stop := untilStop(ctx, sigs, e.log)
		l, err := release.Acquire(lctx, pl.DSN, release.LockOptions{
			Key:            pl.Key,
			Timeout:        pl.Timeout,
			AppName:        appName(),
			Log:            e.log,
			ConnectTimeout: e.plan.Wait.Options.Timeout,
			AttemptTimeout: e.plan.Wait.Options.AttemptTimeout,
			Backoff:        e.plan.Wait.Options.Backoff,
		})
		if s := stop(); s != 0 {
			if l != nil {
				l.Release(context.Background())
			}
			e.log.Info("stopped while waiting for the release lock", "signal", supervise.SignalName(s))
			return supervise.Status(s), false
		}
		if err != nil {
			e.log.Error(err.Error())
			status := release.ExitStatus(err)
			e.ops.releaseFailed("", status, err)
			return status, false
		}
		lock = l
		defer lock.Release(context.Background())
	}
	// A stop signal during a step is forwarded to it; entry then exits with that step's own
	// status (0 if it shut down cleanly) and starts nothing else.
	var stopped *int
	rctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	var step string // the last step started, named in a report
	status, err := release.Run(rctx, lock, e.plan.Release.Steps, func(ctx context.Context, s release.Step) (int, error) {
		step = s.Name
		res, st, err := e.runMain(ctx, reaper, sigs, s.Name, e.tee(e.command(s.Command), s.Name), 0)
		if err == nil && res.StopSignal != nil {
			stopped = &st
			abort(errStopped) // no further step starts
		}
		return st, err
	}, e.log)
	if stopped != nil && status != release.ExitLockLost {
		e.log.Info("stopped during the release phase: no process is started", "status", *stopped)
		return *stopped, false
	}
	if err != nil && status == 0 {
		status = 1
	}
	if status != 0 {
		e.log.Error("release failed: no process is started", "status", status)
		e.ops.releaseFailed(step, status, err)
	}
	return status, status == 0
}

func appName() string {
	return strings.TrimSpace("entry release " + hostname())
}

func hostname() string {
	host, _ := os.Hostname()
	return host
}
