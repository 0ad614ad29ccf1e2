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
// Every signal read from sigs goes to the main process through its pidfd,
// except those forwardable rejects; SIGTERM becomes stop.Signal. TERM, INT
// and QUIT, or the end of ctx (which sends stop.Signal), start the stop: the
// main process has stop.Timeout to exit, then gets SIGKILL. Once it has
// exited, whatever it left behind gets SIGTERM and then SIGKILL when the
// deadline passes: stop.Timeout after the stop request or after the exit,
// whichever came first. Run returns as soon as no child is left.
//
// The main process must be entry's only child: anything else below entry
// counts as left behind by it. Its status is always returned, whatever
// happens to the rest. A start failure is a *StartError.
func Run(ctx context.Context, r *Reaper, cmd *exec.Cmd, sigs <-chan os.Signal, stop StopPolicy, log *slog.Logger) (Result, error) {
	if stop.Signal == 0 {
		stop.Signal = syscall.SIGTERM
	}
	tty := isolate(cmd)
	exits, err := r.Start(cmd)
	if err != nil {
		return Result{}, &StartError{Path: cmd.Path, Err: err}
	}
	p := cmd.Process
	log.Debug("started main process", "pid", p.Pid, "foreground", tty)

	var (
		res    Result
		stopAt time.Time
		kill   <-chan time.Time
		done   = ctx.Done()
	)
	send := func(sig syscall.Signal) {
		if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			log.Warn("cannot signal main process", "pid", p.Pid, "signal", SignalName(sig), "err", err)
		}
	}
	begin := func(sig syscall.Signal, why string) {
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
			if !forwardable(s) {
				continue
			}
			sig := translate(s.(syscall.Signal), stop.Signal)
			if stopping(s) && stopAt.IsZero() {
				res.StopSignal = s
				begin(sig, "received "+SignalName(s.(syscall.Signal)))
			}
			send(sig)
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

	first := time.Now()
	if !stopAt.IsZero() {
		first = stopAt
	}
	cleanup(r, sigs, &res, first.Add(stop.Timeout), log)
	// Only to let os/exec copy the last output and close its pipes: the
	// status is already known, so its ECHILD is expected.
	_ = cmd.Wait()
	return res, nil
}

// cleanup ends what the main process left behind: SIGTERM now, SIGKILL at
// deadline, returning as soon as no child is left. Signals that arrive
// meanwhile have no one to go to and are dropped, but a first stop request
// is still recorded.
func cleanup(r *Reaper, sigs <-chan os.Signal, res *Result, deadline time.Time, log *slog.Logger) {
	note := func(s os.Signal) {
		if stopping(s) && res.StopSignal == nil {
			res.StopSignal = s
		}
		if forwardable(s) {
			log.Debug("main process gone, signal dropped", "signal", s)
		}
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
