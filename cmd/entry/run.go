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
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/entry-dev/entry/internal/plan"
	"github.com/entry-dev/entry/supervise"
	"golang.org/x/sys/unix"
)

// Exit statuses of entry itself (sysexits.h); the children's own pass through unchanged.
const (
	exitUsage       = 64
	exitUnavailable = 69
	exitConfig      = 78
)

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

// run is the whole of entry, and returns its exit status. environ is its only source of
// configuration (main passes os.Environ()) and the environment of every release step and
// process, so a test runs entry in-process with an environment of its own.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) int {
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
		return health(ctx, environ, stdout, stderr)
	}
	mode := plan.Command
	switch inv.verb {
	case "procfile":
		mode = plan.Procfile
	case "config":
		mode = plan.Describe
	}
	p, err := plan.Build(environ, mode)
	if err != nil {
		log := newLogger(supervise.NewOutput(stdout, stderr, "text", false).Entry(), "text", slog.LevelInfo)
		var errs *plan.Errors
		if errors.As(err, &errs) {
			for _, e := range errs.List {
				log.Error(e.Error())
			}
		} else {
			log.Error(err.Error())
		}
		return exitConfig
	}
	// entry's own lines go through the same Output as the children's, so that they are never
	// interleaved with them and share their alignment.
	out := supervise.NewOutput(stdout, stderr, p.Log.Format, isTerminal(stdout))
	for _, pr := range p.Processes {
		out.Reserve(pr.Name)
	}
	log := newLogger(out.Entry(), p.Log.Format, p.Log.Level)
	for _, w := range p.Warnings {
		log.Warn(w)
	}
	if inv.verb == "run" {
		for _, w := range p.Stop.CommandWarnings(inv.argv) {
			log.Warn(w)
		}
	}
	switch inv.verb {
	case "config":
		p.Print(stdout)
		return 0
	case "check":
		return check(ctx, stdout, p)
	}
	e := &entry{plan: p, log: log, environ: environ, stdout: stdout, stderr: stderr, out: out}
	if status := e.startOps(); status != 0 {
		return status
	}
	defer e.ops.flush()
	return e.main(ctx, inv)
}

// entry carries one run of the wait → release → supervise pipeline over a Plan.
type entry struct {
	plan           *plan.Plan
	log            *slog.Logger
	environ        []string // the children's environment
	stdout, stderr io.Writer
	out            *supervise.Output
	health         *supervise.Health
	ops            *opsRun // reports and death causes (ops.go)
}

func (e *entry) main(ctx context.Context, inv invocation) int {
	// Subscribe before anything starts: SIGCHLD before the first child (a child that exits
	// at once would otherwise be missed), every forwardable signal so that nothing reaching
	// PID 1 is dropped by the kernel for want of a handler.
	sigs := make(chan os.Signal, 2048)
	// No signal.Stop: the process exits right after main returns, and unsubscribing some
	// sixty signals one by one would only delay that exit.
	if err := supervise.Notify(sigs); err != nil {
		e.log.Warn("some signals cannot be forwarded", "err", err)
	}
	if inv.verb == "wait" {
		return e.wait(ctx, sigs)
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
	if addr := e.plan.HealthAddr; addr != "" {
		stop, err := e.serveHealth(addr)
		if err != nil {
			e.log.Error("ENTRY_HEALTH_ADDR: cannot listen", "addr", addr, "err", err)
			return exitConfig
		}
		defer stop()
	}

	if status := e.wait(ctx, sigs); status != 0 {
		return status
	}
	if r := e.plan.Release; len(r.Steps) > 0 && r.Skip {
		e.log.Info("ENTRY_SKIP_RELEASE is set: release steps skipped")
	} else if len(r.Steps) > 0 {
		e.health.SetPhase("release")
		if status, ok := e.release(ctx, reaper, sigs); !ok {
			return status
		}
	}
	if e.plan.WaitCommand != nil {
		e.health.SetPhase("waiting")
		if status, ok := e.waitCommand(ctx, reaper, sigs); !ok {
			return status
		}
	}
	e.health.SetPhase("running")
	if inv.verb == "procfile" {
		return e.procfile(ctx, reaper, sigs)
	}
	return e.single(ctx, reaper, sigs, inv.argv)
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
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.environ
	mark := e.ops.mark()
	res, status, err := e.runMain(ctx, reaper, sigs, filepath.Base(argv[0]), cmd, e.plan.Stop.Delay)
	if err != nil {
		e.log.Error(err.Error(), "status", status)
		return status
	}
	cause := e.ops.mainExited(argv[0], res.Exit, res.StopSignal != nil, mark)
	e.log.Info(fmt.Sprintf("%s %s: exiting with status %d", argv[0], res.Exit, status), cause...)
	return status
}

// runMain runs cmd as the main process (a release step, or CMD) on entry's own stdio; name
// labels its lines where they are wrapped (JSON mode). delay is the shutdown delay (CMD's;
// a release step does not serve). status is what entry reports for it: its exit status,
// 126/127 when it could not be started.
func (e *entry) runMain(ctx context.Context, reaper *supervise.Reaper, sigs <-chan os.Signal, name string, cmd *exec.Cmd, delay time.Duration) (res supervise.Result, status int, err error) {
	if cmd.Stdout == nil { // else tee'd (ops.go)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	}
	res, err = supervise.Run(ctx, reaper, cmd, sigs, supervise.RunOptions{
		Stop:          supervise.StopPolicy{Signal: e.plan.Stop.Signal, Timeout: e.plan.Stop.Timeout},
		Log:           e.log,
		Output:        e.out,
		Name:          name,
		ShutdownDelay: delay,
		Health:        e.health,
	})
	if se := (*supervise.StartError)(nil); errors.As(err, &se) {
		return res, se.Status(), err
	} else if err != nil {
		return res, 1, err
	}
	return res, res.Exit.Status(), nil
}
