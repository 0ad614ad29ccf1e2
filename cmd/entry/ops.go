package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/entry-dev/entry/internal/privilege"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/report"
	"github.com/entry-dev/entry/supervise"
)

// opsVars are the operations variables, for `entry help` and the check for unknown
// ENTRY_* names. SENTRY_* are the app's own, read as its SDK reads them.
var opsVars = [][3]string{
	{"ENTRY_USER", "-", "started as root: become this user (name, uid or uid:gid) at start, for the wait, the release and every process"},
	{"ENTRY_CHOWN", "-", "directories (comma separated) given to ENTRY_USER first, not recursively, e.g. /app/media"},
	{"SENTRY_DSN", "-", "report entry's incidents (dependency refused or absent, failed release, lost lock, crash loop, process killed) to this Sentry project"},
	{"ENTRY_SENTRY_DSN", "SENTRY_DSN", "a Sentry DSN for entry's reports only"},
	{"ENTRY_SENTRY", "true", "false turns the Sentry reports off"},
	{"ENTRY_SENTRY_TIMEOUT", "2s", "bound on sending the reports; at exit entry waits at most this long for them"},
	{"SENTRY_RELEASE, SENTRY_ENVIRONMENT", "-", "release and environment of the reports, as the app's SDK uses them"},
}

// ops is the validated operations configuration: Sentry, and the user to run as.
type ops struct {
	sentry     report.Options // DSN "" when off
	sentryFrom string         // the variable the DSN came from
	user       *privilege.User
	userSpec   string
	chown      []string
}

// parseOps reads and checks ENTRY_USER, ENTRY_CHOWN and the Sentry variables. Every error
// is a configuration error, found before anything runs.
func parseOps(getenv func(string) string) (ops, error) {
	return parseOpsFiles(getenv, "/etc/passwd", "/etc/group")
}

func parseOpsFiles(getenv func(string) string, passwd, group string) (ops, error) {
	var o ops
	on := true
	if v := getenv("ENTRY_SENTRY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, badVar("ENTRY_SENTRY", "invalid boolean (want true or false) %q", v)
		}
		on = b
	}
	o.sentryFrom = "ENTRY_SENTRY_DSN"
	dsn := getenv("ENTRY_SENTRY_DSN")
	if dsn == "" {
		dsn, o.sentryFrom = getenv("SENTRY_DSN"), "SENTRY_DSN"
	}
	if on && dsn != "" {
		if err := report.CheckDSN(dsn); err != nil {
			return o, badVar(o.sentryFrom, "%v", err)
		}
		timeout := report.DefaultTimeout
		if v := getenv("ENTRY_SENTRY_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return o, badVar("ENTRY_SENTRY_TIMEOUT", "want a positive duration such as 2s, got %q", v)
			}
			timeout = d
		}
		host, _ := os.Hostname()
		o.sentry = report.Options{
			DSN:         dsn,
			Release:     getenv("SENTRY_RELEASE"),
			Environment: getenv("SENTRY_ENVIRONMENT"),
			ServerName:  host,
			Timeout:     timeout,
		}
	}
	o.chown = splitList(getenv("ENTRY_CHOWN"))
	o.userSpec = strings.TrimSpace(getenv("ENTRY_USER"))
	if o.userSpec == "" {
		if len(o.chown) > 0 {
			return o, badVar("ENTRY_CHOWN", "is set but ENTRY_USER is not: whom to give the directories to?")
		}
		return o, nil
	}
	u, err := privilege.Resolve(o.userSpec, passwd, group)
	if err != nil {
		return o, badVar("ENTRY_USER", "%v", err)
	}
	if err := privilege.Allowed(os.Geteuid(), u); err != nil {
		return o, badVar("ENTRY_USER", "%v", err)
	}
	if err := privilege.Check(o.chown); err != nil {
		return o, badVar("ENTRY_CHOWN", "%v", err)
	}
	o.user = &u
	return o, nil
}

// printOps adds the operations settings to `entry config`. The DSN shows as its host only:
// its user part is the project's key.
func printOps(w io.Writer, o ops) {
	user := "entry's own"
	if o.user != nil {
		user = o.user.String()
		if len(o.chown) > 0 {
			user += ", given " + strings.Join(o.chown, ", ")
		}
	}
	fmt.Fprintf(w, "user: %s\n", user)
	if o.sentry.DSN == "" {
		fmt.Fprintln(w, "sentry: off")
		return
	}
	host := ""
	if u, err := url.Parse(o.sentry.DSN); err == nil {
		host = u.Host
	}
	fmt.Fprintf(w, "sentry: %s (from %s), release %q, environment %q, timeout %s\n", host, o.sentryFrom, o.sentry.Release, o.sentry.Environment, o.sentry.Timeout)
}

// opsRun is what the operations features need during a run.
type opsRun struct {
	reporter  *report.Reporter
	incidents *supervise.Incidents
	stepMark  supervise.OOMMark
}

// startOps gives the directories to ENTRY_USER and becomes that user, then sets up the
// reports. It returns a non-zero status when entry must not go on.
func (e *entry) startOps(o ops) int {
	if o.user != nil {
		notes, err := privilege.Chown(o.chown, *o.user)
		for _, n := range notes {
			e.log.Warn("ENTRY_CHOWN: " + n)
		}
		if err != nil {
			e.log.Error("ENTRY_CHOWN: " + err.Error())
			return exitConfig
		}
		if err := privilege.Drop(*o.user); err != nil {
			e.log.Error("ENTRY_USER: cannot become "+o.user.String(), "err", err)
			return exitConfig
		}
		// As gosu does: tools that write under ~ (pip, celery's state) must not aim at /root.
		if o.user.Home != "" {
			os.Setenv("HOME", o.user.Home)
		}
		e.log.Info("running as "+o.user.String(), "chown", strings.Join(o.chown, ","))
	}
	e.ops = &opsRun{incidents: &supervise.Incidents{}}
	if w, err := supervise.FindOOMWatch(); err != nil {
		e.log.Debug("no memory cgroup: OOM kills cannot be told from other SIGKILLs", "err", err)
	} else {
		e.ops.incidents.OOM = w
		e.log.Debug("OOM kills are read from the memory cgroup", "cgroup", w.String())
		// For the workers below gunicorn or celery, whose death entry does not see.
		go e.ops.incidents.Watch(context.Background(), oomPoll, oomSettle, e.descendantKilled)
	}
	if o.sentry.DSN == "" {
		return 0
	}
	o.sentry.Secrets = e.cfg.secrets()
	o.sentry.Log = e.log
	r, err := report.New(o.sentry)
	if err != nil {
		e.log.Error(o.sentryFrom + ": " + err.Error())
		return exitConfig
	}
	e.ops.reporter = r
	e.ops.incidents.Report = func(in supervise.Incident) {
		exits := make([]string, len(in.Exits))
		for i, x := range in.Exits {
			exits[i] = x.String()
		}
		r.Incident(report.Event{Kind: in.Kind, Phase: "running", Process: in.Process, Cause: in.Cause,
			Status: in.Exit.Status(), Lines: in.Lines, Exits: exits})
	}
	e.log.Debug("incidents are reported to Sentry", "from", o.sentryFrom)
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

// secrets are the passwords of the dependencies, masked in the reports wherever they
// show up in the output lines they carry.
func (c *config) secrets() []string {
	var out []string
	for _, d := range c.deps {
		if u, err := splitURL(d.url); err == nil && u.hasPass && u.pass != "" {
			out = append(out, u.pass)
		}
	}
	return out
}

// flush sends what is queued, within the bound.
func (o *opsRun) flush() {
	if o != nil {
		o.reporter.Flush()
	}
}

// dependencyFailed reports a wait that ended in 69. A refusal names its dependency first,
// as its checker shows it (password masked): that is the event's process.
func (o *opsRun) dependencyFailed(err error, deps []dependency) {
	if o == nil {
		return
	}
	ev := report.Event{Kind: report.KindDependency, Phase: "wait", Cause: err.Error(), Status: exitUnavailable,
		Tags: map[string]string{"refused": "timeout"}}
	if perm := (*readiness.PermanentError)(nil); errors.As(err, &perm) {
		ev.Tags["refused"] = "permanent"
		for _, d := range deps {
			if strings.HasPrefix(ev.Cause, d.target+":") {
				ev.Process = d.target
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
