package supervise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StopPolicy says how the main process is asked to stop: Signal first, then
// SIGKILL once Timeout has passed.
type StopPolicy struct {
	Signal  syscall.Signal
	Timeout time.Duration
}

// Result is how Run ended. StopSignal is the signal that asked entry to stop,
// nil when the main process ended by itself or ctx ended it.
type Result struct {
	Exit       Exit
	StopSignal os.Signal
}

// RunOptions configures Run. Output, when set and in JSON mode, receives
// the main process's stdout and stderr as records named Name, unless its
// stdin is a terminal (an interactive program needs the terminal itself).
// Otherwise the main process writes to cmd.Stdout and cmd.Stderr directly.
// ShutdownDelay holds the stop signal back after a SIGTERM, with Health
// (when set) not ready meanwhile (see drain).
type RunOptions struct {
	Stop          StopPolicy
	Log           *slog.Logger
	Output        *Output
	Name          string
	ShutdownDelay time.Duration
	Health        *Health
}

// StartError is a main process that could not be started. Status is the
// exit status a shell (and tini) gives for it.
type StartError struct {
	Path string
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("start %s: %v", e.Path, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// Status is 127 when the program does not exist, 126 when it exists but
// cannot be run.
func (e *StartError) Status() int {
	if errors.Is(e.Err, exec.ErrNotFound) || errors.Is(e.Err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// killGrace bounds how long Run keeps killing leftovers that will not go
// (a process stuck in uninterruptible sleep): past it, they are left to the
// kernel, which kills them when PID 1 exits.
const killGrace = 5 * time.Second

// Run runs cmd as the single main process until it and everything it left
// behind are gone.
//
// Every signal read from sigs that Classify forwards goes to the main
// process through its pidfd; SIGTERM becomes opt.Stop.Signal. A stop signal,
// or the end of ctx (which sends opt.Stop.Signal), starts the stop: the main
// process has opt.Stop.Timeout to exit, then gets SIGKILL. Once it has
// exited, whatever it left behind gets SIGTERM and then SIGKILL when the
// deadline passes: the timeout after the stop request or after the exit,
// whichever came first. Run returns as soon as no child is left.
//
// With opt.ShutdownDelay, a SIGTERM first makes opt.Health not ready and
// holds the stop signal back for the delay (a second SIGTERM, or INT or
// QUIT, cuts it short); the timeout starts when the signal goes out.
//
// When stdin is entry's controlling terminal, the main process's group gets
// the terminal's foreground while it runs, and entry takes it back when it
// exits, so that Ctrl-C reaches whoever runs next.
//
// The main process must be entry's only child: anything else below entry
// counts as left behind by it. Its status is always returned, whatever
// happens to the rest. A start failure is a *StartError.
func Run(ctx context.Context, r *Reaper, cmd *exec.Cmd, sigs <-chan os.Signal, opt RunOptions) (Result, error) {
	stop, log := opt.Stop, opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stop.Signal == 0 {
		stop.Signal = syscall.SIGTERM
	}
	pipes, err := opt.Output.wrap(cmd, opt.Name)
	if err != nil {
		log.Warn("cannot make a pipe for the output: writing it directly", "err", err)
	}
	tty := isolate(cmd)
	exits, err := r.Start(cmd)
	if err != nil {
		for _, p := range pipes {
			p.abandon()
		}
		return Result{}, &StartError{Path: cmd.Path, Err: err}
	}
	for _, p := range pipes {
		p.started()
	}
	p := cmd.Process
	log.Debug("started main process", "pid", p.Pid, "foreground", tty != nil)

	var (
		res    Result
		stopAt time.Time
		kill   <-chan time.Time
		done   = ctx.Done()
		drain  = newDrain(opt.ShutdownDelay, opt.Health, log)
	)
	send := func(sig syscall.Signal) {
		if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			log.Warn("cannot signal main process", "pid", p.Pid, "signal", SignalName(sig), "err", err)
		}
	}
	begin := func(sig syscall.Signal, why string) {
		drain.end()
		stopAt = time.Now()
		kill = time.After(stop.Timeout)
		log.Info("stopping main process", "pid", p.Pid, "signal", SignalName(sig), "timeout", stop.Timeout, "reason", why)
	}
wait:
	for {
		select {
		case res.Exit = <-exits:
			break wait
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			switch Classify(s, true) {
			case Ignore:
				continue
			case Stop:
				if stopAt.IsZero() {
					if res.StopSignal == nil {
						res.StopSignal = s
					}
					if drain.hold(sig) {
						continue
					}
					begin(translate(sig, stop.Signal), "received "+SignalName(sig))
				}
			}
			send(translate(sig, stop.Signal))
		case <-drain.C:
			begin(stop.Signal, "received SIGTERM, after the shutdown delay")
			send(stop.Signal)
		case <-done:
			done = nil
			if stopAt.IsZero() {
				begin(stop.Signal, "cancelled")
				send(stop.Signal)
			}
		case <-kill:
			kill = nil
			log.Warn("main process did not exit in time, sending SIGKILL", "pid", p.Pid, "timeout", stop.Timeout)
			send(syscall.SIGKILL)
		}
	}
	log.Debug("main process exited", "pid", p.Pid, "exit", res.Exit.String())
	tty.reclaim(p.Pid, log)

	first := time.Now()
	if !stopAt.IsZero() {
		first = stopAt
	}
	cleanup(r, sigs, &res, first.Add(stop.Timeout), log)
	// Only to let os/exec close its side: the status is already known, so
	// its ECHILD is expected. Release closes the pidfd now rather than at
	// the next garbage collection.
	_ = cmd.Wait()
	_ = p.Release()
	deadline := time.Now().Add(waitDelay)
	for _, p := range pipes {
		p.drain(deadline)
	}
	return res, nil
}

// cleanup ends what the main process left behind: SIGTERM now, SIGKILL at
// deadline, returning as soon as no child is left. Signals that arrive
// meanwhile have no one to go to and are dropped, but a first stop request
// is still recorded.
func cleanup(r *Reaper, sigs <-chan os.Signal, res *Result, deadline time.Time, log *slog.Logger) {
	note := func(s os.Signal) {
		switch Classify(s, true) {
		case Stop:
			if res.StopSignal == nil {
				res.StopSignal = s
			}
		case Forward:
			log.Debug("main process gone, signal dropped", "signal", s)
		}
	}
	// Reaping what has exited first, here rather than on the reap loop's next turn, often
	// shows that nothing is left, and spares a scan of /proc racing the reaper through
	// thousands of zombies.
	if r.reap() {
		return
	}
	if time.Until(deadline) > 0 {
		n, err := signalDescendants(unix.SIGTERM)
		if err != nil {
			log.Warn("cannot list leftover processes", "err", err)
		}
		if n > 0 {
			log.Info("stopping leftover processes", "count", n, "signal", "SIGTERM", "deadline", time.Until(deadline).Round(time.Millisecond))
		}
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		for {
			select {
			case <-r.emptied():
				return
			case s := <-sigs:
				note(s)
				continue
			case <-timer.C:
			}
			break
		}
	}
	giveUp := time.NewTimer(killGrace)
	defer giveUp.Stop()
	for logged := false; ; {
		n, err := signalDescendants(unix.SIGKILL)
		if n > 0 && !logged {
			logged = true
			log.Warn("leftover processes did not exit in time, sending SIGKILL", "count", n)
		}
		if err != nil {
			log.Warn("cannot list leftover processes", "err", err)
		}
		// Processes forked while /proc was read escaped this pass: retry
		// until none is left.
		retry := time.NewTimer(50 * time.Millisecond)
		select {
		case <-r.emptied():
			retry.Stop()
			return
		case s := <-sigs:
			note(s)
		case <-retry.C:
		case <-giveUp.C:
			retry.Stop()
			log.Error("leftover processes would not die", "count", n)
			return
		}
		retry.Stop()
	}
}
