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
       entry health              exit 0 if this container's entry is ready (ENTRY_HEALTH_ADDR)
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
	case "wait", "check", "config", "version", "help", "health":
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
	case "health":
		return health(ctx, getenv, stdout, stderr)
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
	ops, err := parseOps(getenv)
	if err != nil {
		log.Error(err.Error())
		return exitConfig
	}

	var procs []procfile.Entry
	if inv.verb == "procfile" || inv.verb == "config" {
		procs, err = c.readProcfile(inv.verb == "procfile")
		if err != nil {
			log.Error(err.Error())
			return exitConfig
		}
		for _, in := range c.selected(procs) {
			out.Reserve(in.name)
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
		printOps(stdout, ops)
		return 0
	case "check":
		return check(ctx, stdout, c, checks)
	}
	e := &entry{cfg: c, log: log, getenv: getenv, stdout: stdout, stderr: stderr, out: out}
	if status := e.startOps(ops); status != 0 {
		return status
	}
	defer e.ops.flush()
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
	ops            *opsRun // reports and death causes (ops.go)
}

func (e *entry) main(ctx context.Context, inv invocation, procs []procfile.Entry, checks []readiness.Checker) int {
	// Subscribe before anything starts: SIGCHLD before the first child (a child that exits
	// at once would otherwise be missed), every forwardable signal so that nothing reaching
	// PID 1 is dropped by the kernel for want of a handler.
	sigs := make(chan os.Signal, 2048)
	// No signal.Stop: the process exits right after main returns, and unsubscribing some
	// sixty signals one by one would only delay that exit.
	signal.Notify(sigs, forwardable()...)
	if inv.verb == "wait" {
		return e.wait(ctx, sigs, checks)
	}
	chld := make(chan os.Signal, 2048)
	signal.Notify(chld, unix.SIGCHLD)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if os.Getpid() != 1 {
		if err := supervise.SetSubreaper(); err != nil {
			e.log.Warn("not PID 1 and cannot become a child subreaper: orphans will not be reaped", "err", err)
		} else {
			e.log.Info("not PID 1: registered as child subreaper, orphans are reaped here", "pid", os.Getpid())
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
	steps, _ := e.cfg.releaseSteps(procs)
	if len(steps) > 0 && e.cfg.SkipRelease {
		e.log.Info("ENTRY_SKIP_RELEASE is set: release steps skipped")
	} else if len(steps) > 0 {
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

func (e *entry) single(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, argv []string) int {
	mark := e.ops.mark()
	res, status, err := e.runMain(ctx, reaper, sigs, exec.Command(argv[0], argv[1:]...))
	if err != nil {
		e.log.Error(err.Error(), "status", status)
		return status
	}
	cause := e.ops.mainExited(argv[0], res.Exit, res.StopSignal != nil, mark)
	e.log.Info(fmt.Sprintf("%s %s: exiting with status %d", argv[0], res.Exit, status), cause...)
	return status
}

// runMain runs cmd as the main process (a release step, or CMD) on entry's own stdio. status
// is what entry reports for it: its exit status, 126/127 when it could not be started.
func (e *entry) runMain(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, cmd *exec.Cmd) (res supervise.Result, status int, err error) {
	if cmd.Stdout == nil { // else tee'd (ops.go)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	}
	res, err = supervise.Run(ctx, reaper, cmd, sigs, supervise.StopPolicy{Signal: e.cfg.stop, Timeout: e.cfg.StopTimeout}, e.log)
	if se := (*supervise.StartError)(nil); errors.As(err, &se) {
		return res, se.Status(), err
	} else if err != nil {
		return res, 1, err
	}
	return res, res.Exit.Status(), nil
}
