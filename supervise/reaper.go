package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Reaper is the one owner of wait4(-1) in the process. Every child must be
// started through Start: a child started any other way may be reaped here
// and its status counted as an orphan's.
//
// Start holds the lock across cmd.Start and the registration of the pid, and
// the reap loop holds it around each wait4, so an exit is never collected
// before someone is listening for it (the race that loses statuses with a
// naive reaper next to exec.Cmd.Wait).
type Reaper struct {
	log     *slog.Logger
	ctx     context.Context
	poke    chan struct{}
	orphans atomic.Int64 // reaped, not started by Start; read by the tests

	mu    sync.Mutex
	exits map[int]chan Exit
	empty chan struct{} // closed once wait4 said ECHILD and nothing started since
}

// NewReaper starts the reap loop, which runs until ctx is done; ctx should
// live as long as any child. kick must already be subscribed to SIGCHLD
// (signal.Notify, with a large buffer) before any child starts.
func NewReaper(ctx context.Context, kick <-chan os.Signal, log *slog.Logger) *Reaper {
	r := &Reaper{
		log:   log,
		ctx:   ctx,
		poke:  make(chan struct{}, 1),
		exits: make(map[int]chan Exit),
		empty: make(chan struct{}),
	}
	go r.loop(kick)
	return r
}

// SetSubreaper makes orphaned descendants come back to this process rather
// than to the namespace's init: needed when entry is not PID 1, as under
// docker run --init.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	return nil
}

// Start starts cmd and returns a channel that receives its Exit once. The
// child starts with an empty signal mask. Holding the lock across cmd.Start
// also keeps the reap loop away from a child whose exec failed, which
// os/exec reaps itself.
func (r *Reaper) Start(cmd *exec.Cmd) (<-chan Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ctx.Err(); err != nil {
		return nil, fmt.Errorf("reaper stopped: %w", err)
	}
	if err := withEmptyMask(cmd.Start); err != nil {
		return nil, err
	}
	ch := make(chan Exit, 1)
	r.exits[cmd.Process.Pid] = ch
	select {
	case <-r.empty:
		r.empty = make(chan struct{})
	default:
	}
	return ch, nil
}

// Wait receives the Exit of cmd, started by Start, then lets cmd.Wait copy
// the rest of its output and close its pipes. cmd.Wait can only fail with
// ECHILD here since the status was already collected; that is expected.
func (r *Reaper) Wait(cmd *exec.Cmd, exits <-chan Exit) Exit {
	e := <-exits
	_ = cmd.Wait()
	return e
}

// emptied returns a channel closed once no child is left, and makes the
// reap loop take a fresh look.
func (r *Reaper) emptied() <-chan struct{} {
	r.mu.Lock()
	empty := r.empty
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
	return empty
}

func (r *Reaper) loop(kick <-chan os.Signal) {
	for {
		r.reap()
		select {
		case <-r.ctx.Done():
			return
		case <-kick:
		case <-r.poke:
		}
	}
}

// reap collects every exited child. SIGCHLD does not queue, so one kick may
// stand for many exits: loop until wait4 has nothing more to give.
// It reports whether no child is left at all.
func (r *Reaper) reap() (none bool) {
	for {
		e, known, err := r.reapOne()
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			if !errors.Is(err, unix.ECHILD) {
				r.log.Error("wait4 failed", "err", err)
			}
			return errors.Is(err, unix.ECHILD)
		case e.Pid == 0:
			return false
		case !known:
			r.log.Debug("reaped orphan", "pid", e.Pid, "exit", e.String())
		}
	}
}

// reapOne collects one exited child, if any (Pid 0 when none), and hands its
// Exit to whoever started it through Start.
func (r *Reaper) reapOne() (e Exit, known bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws unix.WaitStatus
	pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
	if errors.Is(err, unix.ECHILD) {
		select {
		case <-r.empty:
		default:
			close(r.empty)
		}
	}
	if err != nil || pid <= 0 {
		return Exit{}, false, err
	}
	e = exitOf(pid, ws)
	ch, known := r.exits[pid]
	if !known {
		r.orphans.Add(1)
		return e, false, nil
	}
	delete(r.exits, pid)
	ch <- e
	return e, true, nil
}
