package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/entry-dev/entry/internal/plan"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// wait is the wait phase: every dependency of the plan, until ready or the deadline.
func (e *entry) wait(ctx context.Context, sigs <-chan os.Signal) int {
	for _, n := range e.plan.Notes {
		e.log.Info(n)
	}
	if e.plan.Wait.Skip {
		e.log.Info("ENTRY_SKIP_WAIT is set: not waiting for dependencies")
		return 0
	}
	deps := e.plan.Dependencies
	if len(deps) == 0 {
		// Said at info level: a misspelled DATABASE_URI would otherwise pass in silence.
		e.log.Info("no dependency to wait for (set ENTRY_WAIT, or DATABASE_URL, CELERY_BROKER_URL, REDIS_URL with ENTRY_DISCOVER=true)")
		return 0
	}
	checks := make([]readiness.Checker, len(deps))
	for i, d := range deps {
		checks[i] = d.Checker
	}
	opt := e.plan.Wait.Options
	opt.Log = e.log
	wctx, stop := untilStop(ctx, sigs, e.log)
	err := readiness.Wait(wctx, checks, opt)
	if s := stop(); s != 0 {
		e.log.Info("stopped while waiting", "signal", supervise.SignalName(s))
		return supervise.Status(s)
	}
	if err == nil {
		return 0
	}
	// A *readiness.PermanentError's text already carries its hint.
	e.log.Error(err.Error())
	e.ops.dependencyFailed(err, e.plan.Dependencies)
	return exitUnavailable
}

// check probes each dependency once and prints a table: `entry check`.
func check(ctx context.Context, w io.Writer, p *plan.Plan) int {
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()
	checks := make([]readiness.Checker, len(p.Dependencies))
	for i, d := range p.Dependencies {
		checks[i] = d.Checker
	}
	results := readiness.Probe(ctx, checks, p.Wait.Options.AttemptTimeout)
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
		d := p.Dependencies[i]
		fmt.Fprintf(w, "%-44s %-20s %-6s %9s  %s\n", d.Target, d.Source, state, r.Latency.Round(time.Millisecond), detail)
	}
	if len(results) == 0 {
		fmt.Fprintln(w, "(no dependency configured)")
	}
	return status
}
