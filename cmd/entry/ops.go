package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/entry-dev/entry/internal/plan"
	"github.com/entry-dev/entry/internal/privilege"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/report"
	"github.com/entry-dev/entry/supervise"
)

// setEnv returns environ with name set to value, replacing an earlier entry.
func setEnv(environ []string, name, value string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// opsRun is what the operations features need during a run.
type opsRun struct {
	reporter  *report.Reporter
	incidents *supervise.Incidents
	stepMark  supervise.OOMMark
}

// startOps gives the directories to ENTRY_USER and becomes that user, then sets up the
// reports. It returns a non-zero status when entry must not go on.
func (e *entry) startOps() int {
	p := e.plan
	if u := p.User; u != nil {
		if err := privilege.Allowed(os.Geteuid(), *u); err != nil {
			e.log.Error("ENTRY_USER: " + err.Error())
			return exitConfig
		}
		notes, err := privilege.Chown(p.Chown, *u)
		for _, n := range notes {
			e.log.Warn("ENTRY_CHOWN: " + n)
		}
		if err != nil {
			e.log.Error("ENTRY_CHOWN: " + err.Error())
			return exitConfig
		}
		if err := privilege.Drop(*u); err != nil {
			e.log.Error("ENTRY_USER: cannot become "+u.String(), "err", err)
			return exitConfig
		}
		// As gosu does: tools that write under ~ (pip, celery's state) must not aim at /root.
		if u.Home != "" {
			e.environ = setEnv(e.environ, "HOME", u.Home)
		}
		e.log.Info("running as "+u.String(), "chown", strings.Join(p.Chown, ","))
	}
	e.ops = &opsRun{incidents: &supervise.Incidents{}}
	if w, err := supervise.FindOOMWatch(); err != nil {
		e.log.Debug("no memory cgroup: OOM kills cannot be told from other SIGKILLs", "err", err)
	} else {
		e.ops.incidents.OOM = w
		e.log.Debug("OOM kills are read from the memory cgroup", "cgroup", w.String())
		// For the workers below gunicorn or celery, whose death entry does not see.
		e.ops.incidents.Watch(context.Background(), oomPoll, oomSettle, e.descendantKilled)
	}
	if p.Sentry == nil {
		return 0
	}
	opt := p.Sentry.Options
	opt.ServerName, _ = os.Hostname()
	opt.Secrets = p.Secrets
	opt.Log = e.log
	r, err := report.New(opt)
	if err != nil {
		e.log.Error(p.Sentry.From + ": " + err.Error())
		return exitConfig
	}
	e.ops.reporter = r
	// Procfile processes, and release steps in JSON mode, write through the Output: it keeps
	// their last lines for the reports (tee does it for a release step's own stdio).
	e.out.KeepLines(e.ops.incidents)
	e.ops.incidents.Report = func(in supervise.Incident) {
		exits := make([]string, len(in.Exits))
		for i, x := range in.Exits {
			exits[i] = x.String()
		}
		r.Incident(report.Event{Kind: in.Kind, Phase: "running", Process: in.Process, Cause: in.Cause,
			Status: in.Exit.Status(), Lines: in.Lines, Exits: exits})
	}
	e.log.Debug("incidents are reported to Sentry", "from", p.Sentry.From)
	return 0
}

// oomPoll is how often the OOM-kill count is read (one small file); oomSettle is how long
// a kill may stay unexplained by an exit (whose report waits for its output, up to 2 s)
// before it is put down to a descendant.
const (
	oomPoll   = time.Second
	oomSettle = 3 * time.Second
)

// descendantKilled reports OOM kills that no exit of entry's own children explains: a
// worker that its master (gunicorn, celery) replaces.
func (e *entry) descendantKilled(kills uint64, limit int64) {
	why := "no memory limit: the host ran out of memory"
	if limit > 0 {
		why = "memory limit " + supervise.Bytes(limit)
	}
	cause := fmt.Sprintf("the kernel OOM-killed %d process(es) below entry's own (%s): a worker its master replaces, or a command it ran", kills, why)
	e.log.Warn(cause)
	e.ops.reporter.Incident(report.Event{Kind: report.KindKilled, Phase: "running", Process: "(descendant)", Cause: "OOM-killed: " + cause})
}

// flush sends what is queued, within the bound.
func (o *opsRun) flush() {
	if o != nil {
		o.reporter.Flush()
	}
}

// dependencyFailed reports a wait that ended in 69. A refusal names its dependency first,
// as its checker shows it (password masked): that is the event's process.
func (o *opsRun) dependencyFailed(err error, deps []plan.Dependency) {
	if o == nil {
		return
	}
	ev := report.Event{Kind: report.KindDependency, Phase: "wait", Cause: err.Error(), Status: exitUnavailable,
		Tags: map[string]string{"refused": "timeout"}}
	if perm := (*readiness.PermanentError)(nil); errors.As(err, &perm) {
		ev.Tags["refused"] = "permanent"
		for _, d := range deps {
			if strings.HasPrefix(ev.Cause, d.Target+":") {
				ev.Process = d.Target
			}
		}
	}
	o.reporter.Incident(ev)
}

// tee keeps the last lines of a release step's output for the report of its failure. It
// only takes effect when reports are on: the step then writes through a pipe rather than
// straight to entry's stdout and stderr.
func (e *entry) tee(cmd *exec.Cmd, name string) *exec.Cmd {
	if e.ops == nil || e.ops.reporter == nil {
		return cmd
	}
	w := e.ops.incidents.Writer(name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, io.MultiWriter(e.stdout, w), io.MultiWriter(e.stderr, w)
	// A descendant that survives every kill (uninterruptible sleep) must not hold up
	// the end of the step by keeping the pipe open.
	cmd.WaitDelay = 2 * time.Second
	e.ops.stepMark = e.ops.incidents.OOM.Snapshot()
	return cmd
}

// releaseFailed reports a release that ended with status (not stopped by a signal).
func (o *opsRun) releaseFailed(step string, status int, err error) {
	if o == nil || status == 0 {
		return
	}
	ev := report.Event{Kind: report.KindRelease, Phase: "release", Process: step, Status: status, Lines: o.incidents.Lines(step)}
	switch {
	case errors.Is(err, release.ErrLockLost):
		ev.Kind = report.KindLockLost
	case step == "":
		ev.Process = "release lock"
	}
	ev.Cause = fmt.Sprintf("release failed with status %d", status)
	if err != nil {
		ev.Cause = err.Error()
	}
	if why := o.incidents.Explain(supervise.Exit{Code: status}, o.stepMark); why != "" {
		ev.Cause += ": " + why
	}
	o.reporter.Incident(ev)
}

// mark is the OOM-kill count before the main process starts.
func (o *opsRun) mark() supervise.OOMMark {
	if o == nil {
		return supervise.OOMMark{}
	}
	return o.incidents.OOM.Snapshot()
}

// mainExited explains and reports the main process's death by a signal entry did not
// send; stopped tells that entry was asked to stop, and so sent the signal itself. It
// returns the cause as log attributes, none when there is nothing to explain.
func (o *opsRun) mainExited(name string, x supervise.Exit, stopped bool, mark supervise.OOMMark) []any {
	if o == nil || stopped {
		return nil
	}
	x.Cause = o.incidents.Explain(x, mark)
	if x.Signal != 0 || strings.HasPrefix(x.Cause, "OOM-killed") {
		o.reporter.Incident(report.Event{Kind: report.KindKilled, Phase: "running", Process: name,
			Cause: name + " " + x.String(), Status: x.Status()})
	}
	if x.Cause == "" {
		return nil
	}
	return []any{"cause", x.Cause}
}
