package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// Exit statuses of entry itself (sysexits.h); the children's own pass through unchanged.
const (
	exitUsage       = 64
	exitUnavailable = 69
	exitConfig      = 78
)

const usage = `usage: entry [--] CMD [ARG...]   wait, release, then run CMD as the main process
       entry                     the same, with the processes of the Procfile
       entry wait                wait for the dependencies, then exit 0
       entry check               probe each dependency once and print a table
       entry config              print the resolved plan, secrets redacted
       entry version | help
`

type invocation struct {
	verb string // run, procfile, wait, check, config, version, help
	argv []string
}

func parseArgs(args []string) (invocation, error) {
	if len(args) == 0 {
		return invocation{verb: "procfile"}, nil
	}
	switch a := args[0]; a {
	case "--":
		if len(args) == 1 {
			return invocation{}, errors.New("'--' must be followed by a command")
		}
		return invocation{verb: "run", argv: args[1:]}, nil
	case "wait", "check", "config", "version", "help":
		if len(args) > 1 && a != "help" {
			return invocation{}, fmt.Errorf("%s takes no arguments (to run a program called %s, use entry -- %s)", a, a, a)
		}
		return invocation{verb: a}, nil
	case "-h", "--help":
		return invocation{verb: "help"}, nil
	case "-V", "--version":
		return invocation{verb: "version"}, nil
	default:
		if strings.HasPrefix(a, "-") {
			return invocation{}, fmt.Errorf("unknown option %s (entry is configured by ENTRY_* variables; use -- before a command that starts with '-')", a)
		}
		return invocation{verb: "run", argv: args}, nil
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	inv, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "entry: %v\n%s", err, usage)
		return exitUsage
	}
	switch inv.verb {
	case "version":
		fmt.Fprintf(stdout, "entry %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help":
		printHelp(stdout)
		return 0
	}
	c, err := loadConfig(getenv)
	if err != nil {
		newLogger(stderr, "text", slog.LevelInfo).Error(err.Error())
		return exitConfig
	}
	level, _ := parseLevel(c.LogLevel)
	// entry's own lines go through the same Output as the children's, so that they are never
	// interleaved with them and share their alignment.
	out := supervise.NewOutput(stdout, stderr, c.LogFormat, isTerminal(stdout))
	log := newLogger(out.Entry(), c.LogFormat, level)
	for _, w := range c.warnings {
		log.Warn(w)
	}

	var procs []procfile.Entry
	if inv.verb == "procfile" || inv.verb == "config" {
		procs, err = c.readProcfile(inv.verb == "procfile")
		if err != nil {
			log.Error(err.Error())
			return exitConfig
		}
	}
	checks, err := c.checkers()
	if err != nil {
		log.Error(err.Error())
		return exitConfig
	}
	switch inv.verb {
	case "config":
		if err := printPlan(stdout, c, procs, getenv); err != nil {
			log.Error(err.Error())
			return exitConfig
		}
		return 0
	case "check":
		return check(ctx, stdout, c, checks)
	}
	e := &entry{cfg: c, log: log, getenv: getenv, stdout: stdout, stderr: stderr, out: out}
	return e.main(ctx, inv, procs, checks)
}

// entry carries one run of the wait → release → supervise pipeline.
type entry struct {
	cfg            *config
	log            *slog.Logger
	getenv         func(string) string
	stdout, stderr io.Writer
	out            *supervise.Output
	health         *supervise.Health
}

func (e *entry) main(ctx context.Context, inv invocation, procs []procfile.Entry, checks []readiness.Checker) int {
	// Subscribe before anything starts: SIGCHLD before the first child (a child that exits
	// at once would otherwise be missed), every forwardable signal so that nothing reaching
	// PID 1 is dropped by the kernel for want of a handler.
	sigs := make(chan os.Signal, 2048)
	signal.Notify(sigs, forwardable()...)
	defer signal.Stop(sigs)
	if inv.verb == "wait" {
		return e.wait(ctx, sigs, checks)
	}
	chld := make(chan os.Signal, 2048)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if os.Getpid() != 1 {
		if err := supervise.SetSubreaper(); err != nil {
			e.log.Warn("not PID 1 and cannot become a child subreaper: orphans will not be reaped", "err", err)
		} else {
			e.log.Debug("not PID 1: registered as child subreaper", "pid", os.Getpid())
		}
	}
	reaper := supervise.NewReaper(ctx, chld, e.log)

	e.health = supervise.NewHealth()
	e.health.SetPhase("waiting")
	if e.cfg.HealthAddr != "" {
		stop, err := e.serveHealth(e.cfg.HealthAddr)
		if err != nil {
			e.log.Error("ENTRY_HEALTH_ADDR: cannot listen", "addr", e.cfg.HealthAddr, "err", err)
			return exitConfig
		}
		defer stop()
	}

	if status := e.wait(ctx, sigs, checks); status != 0 {
		return status
	}
	steps := e.releaseSteps(procs)
	if len(steps) > 0 {
		e.health.SetPhase("release")
		if status, ok := e.release(ctx, reaper, sigs, steps); !ok {
			return status
		}
	}
	e.health.SetPhase("running")
	if inv.verb == "procfile" {
		return e.procfile(ctx, reaper, sigs, procs)
	}
	return e.single(ctx, reaper, sigs, inv.argv)
}

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
// function that stops reading and tells which signal it was (nil if none). Between phases
// exactly one reader owns sigs.
func untilStop(ctx context.Context, sigs <-chan os.Signal, log *slog.Logger) (context.Context, func() os.Signal) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() {
		defer close(got)
		for {
			select {
			case s := <-sigs:
				if stopping(s) {
					got <- s
					cancel()
					return
				}
				log.Debug("signal ignored: no process is running yet", "signal", unix.SignalName(s.(syscall.Signal)))
			case <-done:
				return
			}
		}
	}()
	return ctx, func() os.Signal {
		close(done)
		cancel()
		return <-got
	}
}

func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

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
	if s := stop(); s != nil {
		e.log.Info("stopped while waiting", "signal", unix.SignalName(s.(syscall.Signal)))
		return signalStatus(s)
	}
	if err == nil {
		return 0
	}
	// A *readiness.PermanentError's text already carries its hint.
	e.log.Error(err.Error())
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

func (e *entry) serveHealth(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: e.health.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	e.log.Debug("health endpoints listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// command builds the exec.Cmd of a command line: a direct exec when it has no shell syntax,
// /bin/sh -c "exec ..." otherwise (see procfile.Argv).
func command(line string) (*exec.Cmd, bool) {
	argv, group := procfile.Argv(line)
	return exec.Command(argv[0], argv[1:]...), group
}

func (e *entry) releaseSteps(procs []procfile.Entry) []release.Step {
	var steps []release.Step
	if e.cfg.SkipRelease {
		if len(e.cfg.release) > 0 || hasRelease(procs) {
			e.log.Info("ENTRY_SKIP_RELEASE is set: release steps skipped")
		}
		return nil
	}
	if len(e.cfg.release) > 0 {
		for i, line := range e.cfg.release {
			steps = append(steps, release.Step{Name: fmt.Sprintf("release.%d", i+1), Command: line})
		}
		return steps
	}
	for _, p := range procs {
		if p.Type == "release" {
			steps = append(steps, release.Step{Name: "release", Command: p.Command})
		}
	}
	return steps
}

func hasRelease(procs []procfile.Entry) bool {
	for _, p := range procs {
		if p.Type == "release" {
			return true
		}
	}
	return false
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
		if s := stop(); s != nil {
			if l != nil {
				l.Release(context.Background())
			}
			e.log.Info("stopped while waiting for the release lock", "signal", unix.SignalName(s.(syscall.Signal)))
			return signalStatus(s), false
		}
		if err != nil {
			e.log.Error(err.Error())
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
	status, err := release.Run(rctx, lock, steps, func(ctx context.Context, s release.Step) (int, error) {
		cmd, _ := command(s.Command)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
		res, err := supervise.Run(ctx, reaper, cmd, sigs, supervise.StopPolicy{Signal: e.cfg.stop, Timeout: e.cfg.StopTimeout}, e.log)
		if err != nil {
			var se *supervise.StartError
			if errors.As(err, &se) {
				return se.Status(), err
			}
			return 1, err
		}
		if res.StopSignal != nil {
			st := res.Exit.Status()
			stopped = &st
			abort(errStopped) // no further step starts
			return st, nil
		}
		return res.Exit.Status(), nil
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
	}
	return status, status == 0
}

func appName() string {
	host, _ := os.Hostname()
	return strings.TrimSpace("entry release " + host)
}

func (e *entry) single(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	res, err := supervise.Run(ctx, reaper, cmd, sigs, supervise.StopPolicy{Signal: e.cfg.stop, Timeout: e.cfg.StopTimeout}, e.log)
	if err != nil {
		var se *supervise.StartError
		if errors.As(err, &se) {
			e.log.Error(err.Error(), "status", se.Status())
			return se.Status()
		}
		e.log.Error(err.Error())
		return 1
	}
	e.log.Info(fmt.Sprintf("%s %s: exiting with status %d", argv[0], res.Exit, res.Exit.Status()))
	return res.Exit.Status()
}
