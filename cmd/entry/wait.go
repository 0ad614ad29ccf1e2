package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

func (e *entry) wait(ctx context.Context, sigs <-chan os.Signal, checks []readiness.Checker) int {
	for _, n := range e.cfg.notes {
		e.log.Info(n)
	}
	if e.cfg.SkipWait {
		e.log.Info("ENTRY_SKIP_WAIT is set: not waiting for dependencies")
		return 0
	}
	if len(checks) == 0 {
		e.log.Debug("no dependency to wait for")
		return 0
	}
	wctx, stop := untilStop(ctx, sigs, e.log)
	err := readiness.Wait(wctx, checks, readiness.Options{
		Timeout:          e.cfg.WaitTimeout,
		AttemptTimeout:   e.cfg.AttemptTimeout,
		Backoff:          readiness.Backoff{Initial: e.cfg.BackoffInitial, Max: e.cfg.BackoffMax, Factor: 2, Jitter: 0.2},
		ProgressInterval: e.cfg.ProgressInterval,
		Log:              e.log,
	})
	if s := stop(); s != 0 {
		e.log.Info("stopped while waiting", "signal", supervise.SignalName(s))
		return 128 + int(s)
	}
	if err == nil {
		return 0
	}
	// A *readiness.PermanentError's text already carries its hint.
	e.log.Error(err.Error())
	e.ops.dependencyFailed(err, e.cfg.deps)
	return exitUnavailable
}

// checkers builds one probe per dependency; constructors validate what parsing could not.
// From then on each dependency is shown as its checker names it, the same in every output.
func (c *config) checkers() ([]readiness.Checker, error) {
	var out []readiness.Checker
	for i, d := range c.deps {
		var ch readiness.Checker
		var err error
		switch d.kind {
		case kindPostgres:
			ch, err = nilSafe(readiness.NewPostgres(d.url))
		case kindAMQP:
			ch, err = nilSafe(readiness.NewAMQP(d.url))
		case kindRedis:
			ch, err = nilSafe(readiness.NewRedis(d.url))
		case kindHTTP:
			ch, err = nilSafe(readiness.NewHTTP(d.url, readiness.HTTPOptions{CAFile: c.HttpCaFile, Insecure: c.HttpInsecure}))
		case kindTCP:
			ch, err = nilSafe(readiness.NewTCP(d.url))
		}
		if err != nil {
			return nil, badVar(d.source, "%s: %v", d.target, err)
		}
		c.deps[i].target = ch.String()
		out = append(out, ch)
	}
	return out, nil
}

// nilSafe turns a typed constructor result into the interface without a typed-nil trap.
func nilSafe[T readiness.Checker](v T, err error) (readiness.Checker, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func check(ctx context.Context, w io.Writer, c *config, checks []readiness.Checker) int {
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()
	results := readiness.Probe(ctx, checks, c.AttemptTimeout)
	status := 0
	fmt.Fprintf(w, "%-44s %-20s %-6s %9s  %s\n", "DEPENDENCY", "FROM", "STATE", "LATENCY", "DETAIL")
	for i, r := range results {
		state, detail := "up", ""
		if r.Err != nil {
			state, detail, status = "down", r.Err.Error(), exitUnavailable
			if perm := (*readiness.PermanentError)(nil); errors.As(r.Err, &perm) {
				state = "fatal"
			}
		}
		fmt.Fprintf(w, "%-44s %-20s %-6s %9s  %s\n", c.deps[i].target, c.deps[i].source, state, r.Latency.Round(time.Millisecond), detail)
	}
	if len(results) == 0 {
		fmt.Fprintln(w, "(no dependency configured)")
	}
	return status
}
