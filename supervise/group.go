package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is one process of a Procfile formation.
type Process struct {
	Name  string           // "web.1"
	Type  string           // "web"
	Cmd   func() *exec.Cmd // a fresh Cmd for every (re)start; the group sets Stdout/Stderr/SysProcAttr
	Stop  StopPolicy       // per-type stop signal; Timeout is the group's deadline
	Group bool             // deliver the stop signal to the process group (compound shell command)
}

// GroupOptions configures RunGroup. Output receives the children's lines
// (nil discards them); Health, when set, records states; Log, when set,
// receives entry's own lines. StopTimeout is the one grace for all
// processes between the stop signals and SIGKILL (0 kills at once).
type GroupOptions struct {
	Restart     Restart
	StopTimeout time.Duration
	Output      *Output
	Health      *Health
	Log         *slog.Logger
	Incidents   *Incidents // explains and reports deaths; nil: none
}

// waitDelay bounds how long a process's output is still read after it
// exited, when something it left behind keeps the pipe open. Without it,
// the report of the exit would wait as long as that descendant lives.
const waitDelay = 2 * time.Second

// RunGroup starts every process, restarts per policy, and on a stop request
// (TERM/INT/QUIT from sigs, or ctx) sends each process its own stop signal
// in parallel, one deadline for all, SIGKILL to stragglers at its end, then
// cleans up leftover descendants and returns as soon as nothing is left.
// As in Run, SIGTERM stands for each process's stop signal, and INT and
// QUIT, chosen by a person, go through as sent. Other signals (HUP, USR1,
// TTIN...) are forwarded to every process. With Policy "never" the first
// exit stops all, as honcho does. When a process exits and will not be
// restarted, or a crash loop is detected, everything is stopped.
//
// Signals go to each process itself, so that gunicorn and celery masters
// manage their own workers; only when Group is set (a shell that stays, see
// procfile.Argv) do they go to its process group. SIGKILL at the deadline
// always goes to the process group.
//
// It returns entry's exit status:
//
//   - 0 after a requested stop where every process exited by itself: with
//     status 0, or killed by the signal it was sent, or 128+that signal as
//     a shell reports it;
//   - after a requested stop otherwise, 137 (128+SIGKILL) when a process had
//     to be killed, else the first other status a process ended with;
//   - when a process stopped the group (not restarted, crash loop or could
//     not be started: 126/127), its status, or 1 if that was 0.
//
// The last line logged names the process and the cause.
func RunGroup(ctx context.Context, r *Reaper, procs []Process, sigs <-chan os.Signal, opt GroupOptions) int {
	g := &group{
		r:      r,
		opt:    opt,
		log:    opt.Log,
		events: make(chan event),
		quit:   make(chan struct{}),
	}
	defer close(g.quit)
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.opt.Restart = opt.Restart.withDefaults()
	for _, p := range procs {
		if p.Stop.Signal == 0 {
			p.Stop.Signal = syscall.SIGTERM
		}
		g.members = append(g.members, &member{Process: p, state: StateStarting})
		if opt.Output != nil {
			opt.Output.Reserve(p.Name)
		}
		opt.Health.add(p.Name, p.Type)
	}
	if len(g.members) == 0 {
		g.log.Warn("no process to run")
		return 0
	}
	for _, m := range g.members {
		if !g.stopping {
			g.start(m)
		}
	}

	done := ctx.Done()
	for g.running() {
		select {
		case ev := <-g.events:
			if ev.due {
				g.restart(ev.m)
			} else {
				g.exited(ev.m, ev.exit)
			}
		case s := <-sigs:
			if !forwardable(s) {
				continue
			}
			if stopping(s) && !g.stopping {
				g.stop(s.(syscall.Signal), "received "+SignalName(s.(syscall.Signal)))
				continue
			}
			g.forward(s.(syscall.Signal))
		case <-done:
			done = nil
			g.stop(0, "cancelled")
		case <-g.kill:
			g.kill = nil
			g.killStragglers()
		}
	}

	// Whatever the processes left behind gets the rest of the grace.
	cleanup(r, sigs, &Result{}, g.stopAt.Add(g.opt.StopTimeout), g.log)
	return g.finish()
}

// member is a Process and what the group knows of it.
type member struct {
	Process
	state    string
	cmd      *exec.Cmd
	started  time.Time
	hist     history
	restarts int
	sent     uint64 // signals sent during the stop, as a bit mask
	killed   bool   // got SIGKILL at the deadline

	// reaped is set once the process is gone, while its output is still
	// being drained: its pid, and maybe its group id, are free for reuse.
	reaped atomic.Bool
}

func (m *member) alive() bool {
	return m.state == StateRunning || m.state == StateStopping
}

type event struct {
	m    *member
	exit Exit
	due  bool // the backoff before a restart is over
}

type group struct {
	r      *Reaper
	opt    GroupOptions
	log    *slog.Logger
	events chan event
	quit   chan struct{}

	members  []*member
	stopping bool
	stopAt   time.Time
	kill     <-chan time.Time
	request  string // what asked for the stop, when something did
	cause    string // what stopped the group by itself
	status   int
}

// running reports whether the loop has anything left to wait for.
func (g *group) running() bool {
	for _, m := range g.members {
		if m.alive() || (!g.stopping && m.state == StateBackoff) {
			return true
		}
	}
	return false
}

func (g *group) start(m *member) {
	cmd := m.Cmd()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own group, so that the stop signal, SIGKILL and a terminal's
	// Ctrl-C reach it and its descendants only as the group decides.
	cmd.SysProcAttr.Setpgid = true
	var pipes []*pipe
	if o := g.opt.Output; o != nil {
		for _, stream := range []string{"stdout", "stderr"} {
			p, err := o.pipe(m.Name, stream)
			if err != nil {
				g.log.Error("cannot make a pipe for the output", "process", m.Name, "err", err)
				break
			}
			pipes = append(pipes, p)
		}
		if len(pipes) == 2 {
			cmd.Stdout, cmd.Stderr = pipes[0].child, pipes[1].child
		}
	}
	g.opt.Incidents.started(m.Name)
	exits, err := g.r.Start(cmd)
	if err != nil {
		for _, p := range pipes {
			p.abandon()
		}
		se := &StartError{Path: cmd.Path, Err: err}
		m.state = StateExited
		g.opt.Health.exited(m.Name, Exit{Code: se.Status()}, m.restarts)
		g.log.Error("process could not start", "process", m.Name, "err", se)
		g.fail(fmt.Sprintf("%s could not start: %v", m.Name, se), se.Status())
		return
	}
	for _, p := range pipes {
		p.started()
	}
	m.cmd, m.state, m.started, m.sent, m.killed = cmd, StateRunning, time.Now(), 0, false
	g.opt.Health.set(m.Name, StateRunning, cmd.Process.Pid)
	if m.restarts == 0 {
		g.log.Info("process started", "process", m.Name, "pid", cmd.Process.Pid)
	} else {
		g.log.Info("process restarted", "process", m.Name, "pid", cmd.Process.Pid, "restart", m.restarts)
	}
	m.reaped.Store(false)
	go func() {
		e := g.r.Wait(cmd, exits)
		m.reaped.Store(true)
		// Report the exit only once its output is out, so that entry's
		// lines about it come after the process's own.
		deadline := time.Now().Add(waitDelay)
		for _, p := range pipes {
			p.drain(deadline)
		}
		select {
		case g.events <- event{m: m, exit: e}:
		case <-g.quit:
		}
	}()
}

func (g *group) restart(m *member) {
	if g.stopping || m.state != StateBackoff {
		return
	}
	g.start(m)
}

func (g *group) exited(m *member, e Exit) {
	e = g.opt.Incidents.exited(m.Name, e, m.killed || g.stopping && g.clean(m, e))
	m.state = StateExited
	g.opt.Health.exited(m.Name, e, m.restarts)
	if g.stopping {
		switch {
		case m.killed:
			g.log.Warn("process killed", "process", m.Name, "pid", e.Pid, "exit", e.String())
		case g.clean(m, e):
			g.log.Info("process stopped", "process", m.Name, "pid", e.Pid, "exit", e.String())
		default:
			g.log.Warn("process stopped", "process", m.Name, "pid", e.Pid, "exit", e.String())
			if g.cause == "" && g.status == 0 {
				g.status = e.Status()
				g.request += fmt.Sprintf("; %s %s while stopping", m.Name, e)
			}
		}
		return
	}
	now := time.Now()
	uptime := now.Sub(m.started)
	level := slog.LevelWarn
	if e.Status() == 0 {
		level = slog.LevelInfo
	}
	g.log.Log(context.Background(), level, "process exited", "process", m.Name, "pid", e.Pid, "exit", e.String(), "uptime", uptime.Round(time.Millisecond))
	d := m.hist.next(g.opt.Restart, e, uptime, now, rand.Float64())
	switch {
	case d.restart:
		m.restarts++
		m.state = StateBackoff
		g.opt.Health.restarted(m.Name, m.restarts)
		g.log.Info("restarting process", "process", m.Name, "restart", m.restarts, "backoff", d.delay.Round(time.Millisecond))
		go func() {
			select {
			case <-time.After(d.delay):
				select {
				case g.events <- event{m: m, due: true}:
				case <-g.quit:
				}
			case <-g.quit:
			}
		}()
	case d.crashing:
		cause := fmt.Sprintf("%s is crash-looping: %s after %d restarts within %s", m.Name, e, len(m.hist.times), g.opt.Restart.Window)
		g.opt.Incidents.crashLoop(m.Name, e, cause)
		g.fail(cause, e.Status())
	default:
		g.fail(fmt.Sprintf("%s %s and restart policy is %s", m.Name, e, g.opt.Restart.Policy), e.Status())
	}
}

// fail stops the group for a cause of its own.
func (g *group) fail(cause string, status int) {
	if g.stopping {
		return
	}
	g.cause, g.status = cause, status
	if g.status == 0 {
		g.status = 1
	}
	g.stop(0, cause)
}

// stop sends every live process its stop signal, translated from sig when
// a signal asked for the stop, and arms the one deadline.
func (g *group) stop(sig syscall.Signal, reason string) {
	if g.stopping {
		return
	}
	g.stopping = true
	g.stopAt = time.Now()
	g.kill = time.After(g.opt.StopTimeout)
	if g.cause == "" {
		g.request = reason
	}
	g.opt.Health.SetPhase("stopping")
	n := 0
	for _, m := range g.members {
		switch m.state {
		case StateBackoff, StateStarting:
			m.state = StateExited
			g.opt.Health.set(m.Name, StateExited, 0)
		case StateRunning:
			n++
		}
	}
	g.log.Info("stopping", "reason", reason, "processes", n, "timeout", g.opt.StopTimeout)
	for _, m := range g.members {
		if m.state != StateRunning {
			continue
		}
		s := m.Stop.Signal
		if sig != 0 {
			s = translate(sig, m.Stop.Signal)
		}
		m.state = StateStopping
		g.opt.Health.set(m.Name, StateStopping, 0)
		g.signal(m, s)
	}
}

// forward passes a signal on to every live process.
func (g *group) forward(sig syscall.Signal) {
	for _, m := range g.members {
		if m.alive() {
			g.signal(m, translate(sig, m.Stop.Signal))
		}
	}
}

func (g *group) signal(m *member, sig syscall.Signal) {
	if g.stopping && sig < 64 {
		m.sent |= 1 << sig
	}
	if m.reaped.Load() {
		return
	}
	var err error
	if m.Group {
		err = unix.Kill(-m.cmd.Process.Pid, sig)
	} else {
		err = m.cmd.Process.Signal(sig)
	}
	if err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, unix.ESRCH) {
		g.log.Warn("cannot signal process", "process", m.Name, "pid", m.cmd.Process.Pid, "signal", SignalName(sig), "err", err)
	}
}

func (g *group) killStragglers() {
	for _, m := range g.members {
		if !m.alive() || m.reaped.Load() {
			continue
		}
		pid := m.cmd.Process.Pid
		g.log.Warn("process did not stop in time, sending SIGKILL", "process", m.Name, "pid", pid, "timeout", g.opt.StopTimeout)
		m.killed = true
		// The leader is not reaped, so its group id is not free for reuse;
		// the pidfd reaches it even if it left its group.
		_ = unix.Kill(-pid, unix.SIGKILL)
		_ = m.cmd.Process.Kill()
	}
}

// clean reports whether a process ended as asked: status 0, or the signal
// it was sent, directly or as a shell's 128+N.
func (g *group) clean(m *member, e Exit) bool {
	switch {
	case e.Signal != 0:
		return m.sent&(1<<e.Signal) != 0
	case e.Code > 128 && e.Code < 128+64:
		return m.sent&(1<<(e.Code-128)) != 0
	}
	return e.Code == 0
}

// finish logs the last line and returns the exit status.
func (g *group) finish() int {
	if g.cause != "" {
		g.log.Error("stopped: "+g.cause, "status", g.status)
		return g.status
	}
	if g.status == 0 {
		for _, m := range g.members {
			if m.killed {
				g.status = 128 + int(unix.SIGKILL)
				g.request += fmt.Sprintf("; %s did not stop within %s and was killed", m.Name, g.opt.StopTimeout)
				break
			}
		}
	}
	if g.status != 0 {
		g.log.Warn("stopped: "+g.request, "status", g.status)
		return g.status
	}
	g.log.Info("stopped: "+g.request+"; every process exited", "status", 0)
	return 0
}
