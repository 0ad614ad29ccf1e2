package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/supervise"
)

// command builds the exec.Cmd of a command line: a direct exec when it has no shell syntax,
// /bin/sh -c "exec ..." otherwise (see procfile.Argv).
func command(line string) *exec.Cmd {
	argv, _ := procfile.Argv(line)
	return exec.Command(argv[0], argv[1:]...)
}

// releaseSteps are ENTRY_RELEASE's lines or, when it is unset, the Procfile's release line;
// from names where they came from.
func (c *config) releaseSteps(procs []procfile.Entry) (steps []release.Step, from string) {
	for i, line := range c.release {
		steps = append(steps, release.Step{Name: fmt.Sprintf("release.%d", i+1), Command: line})
	}
	if len(steps) > 0 {
		return steps, "ENTRY_RELEASE"
	}
	for _, p := range procs {
		if p.Type == "release" {
			steps = append(steps, release.Step{Name: "release", Command: p.Command})
		}
	}
	return steps, c.Procfile + ", when no command is given"
}

// errStopped ends the release sequence after a step that entry was asked to stop.
var errStopped = errors.New("stopped by a signal")

// release runs the release steps; it returns entry's exit status and whether to go on.
func (e *entry) release(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, steps []release.Step) (int, bool) {
	var lock *release.Lock
	if e.cfg.lock {
		pg := e.cfg.postgres()
		lctx, stop := untilStop(ctx, sigs, e.log)
		l, err := release.Acquire(lctx, pg.url, release.LockOptions{
			Key:     e.cfg.ReleaseLockKey,
			Timeout: e.cfg.ReleaseLockTimeout,
			AppName: appName(),
			Log:     e.log,
		})
		if s := stop(); s != 0 {
			if l != nil {
				l.Release(context.Background())
			}
			e.log.Info("stopped while waiting for the release lock", "signal", supervise.SignalName(s))
			return 128 + int(s), false
		}
		if err != nil {
			e.log.Error(err.Error())
			e.ops.releaseFailed("", exitUnavailable, err)
			return exitUnavailable, false
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
	status, err := release.Run(rctx, lock, steps, func(ctx context.Context, s release.Step) (int, error) {
		step = s.Name
		res, st, err := e.runMain(ctx, reaper, sigs, e.tee(command(s.Command), s.Name))
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
	host, _ := os.Hostname()
	return strings.TrimSpace("entry release " + host)
}
