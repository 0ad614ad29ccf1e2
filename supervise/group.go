package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sync"
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
	Stop  StopPolicy       // its type's stop signal, and its grace before SIGKILL
	Group bool             // deliver the stop signal to the process group (compound shell command)
}

// GroupOptions configures RunGroup. Output receives the children's lines
// (nil discards them); Health, when set, records states; Log, when set,
// receives entry's own lines. ShutdownDelay holds the stop signals back
// after a SIGTERM (see drain). Each process's grace is its Stop.Timeout.
type GroupOptions struct {
	Restart       Restart
	ShutdownDelay time.Duration
	Output        *Output
	Health        *Health
	Log           *slog.Logger
	Incidents     *Incidents // explains and reports deaths; nil: none

	// Standby lists process types held in standby until a Lease from Leases
	// lets them run (see Lease).
	Standby []string
	Leases  <-chan Lease
}

// waitDelay bounds how long a process's output is still read after it
// exited, when something it left behind keeps writing, or keeps the pipe
// open after it was told to stop.
const waitDelay = 2 * time.Second

// RunGroup starts every process, restarts per policy, and on a stop request
// (a stop signal from sigs, or ctx) sends each process its own stop signal
// in parallel, SIGKILL to each straggler at its own deadline (its
// Stop.Timeout after the stop signals went out), then cleans up leftover
// descendants and returns as soon as nothing is left. With a
// ShutdownDelay, a SIGTERM first turns /readyz to 503 and the stop signals
// go out only after the delay, or at a second stop signal.
// As in Run, SIGTERM stands for each process's stop signal, and INT and
// QUIT, chosen by a person, go through as sent. Other signals (HUP, USR1,
// TTIN...) are forwarded to every process. With Policy "never" the first
// exit stops all, as honcho does. When a process exits and will not be
// restarted, or a crash loop is detected, everything is stopped.
//
// Each process starts in a session of its own. Signals go to each process
// itself, so that gunicorn and celery masters manage their own workers;
// only when Group is set (a shell that stays, see procfile.Argv) do they go
// to its process group. SIGKILL at the deadline always goes to the process
// group. When a process exits, whatever it left in its session or group
// (and below) gets its stop signal, then SIGKILL after its grace, and the
// process is restarted only once all of it is gone: a restart never finds
// its port held by an orphan of the previous run. The exit is reported at
// once, with the output the process wrote before it.
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
	g.drain = newDrain(opt.ShutdownDelay, opt.Health, g.log)
	g.opt.Restart = opt.Restart.withDefaults()
	for _, p := range procs {
		if p.Stop.Signal == 0 {
			p.Stop.Signal = syscall.SIGTERM
		}
		g.members = append(g.members, &member{Process: p, state: StateStarting, standby: slices.Contains(opt.Standby, p.Type)})
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
		switch {
		case g.stopping:
		case m.standby:
			g.transition(m, StateStandby, slog.LevelInfo, "process in standby: it runs in one replica at a time")
		default:
			g.start(m)
		}
	}

	done := ctx.Done()
	for g.running() {
		select {
		case ev := <-g.events:
			switch {
			case ev.kill:
				g.killRevoked(ev.m, ev.run)
			case ev.due:
				if ev.run == ev.m.runs {
					g.restart(ev.m)
				}
			default:
				g.exited(ev.m, ev.exit)
			}
		case l := <-g.opt.Leases:
			g.lease(l)
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			switch Classify(s, true) {
			case Stop:
				if !g.stopping {
					if !g.drain.hold(sig) {
						g.stop(sig, "received "+SignalName(sig))
					}
					continue
				}
				g.forward(sig)
			case Forward:
				g.forward(sig)
			}
		case <-g.drain.C:
			g.stop(syscall.SIGTERM, "received SIGTERM, after the shutdown delay")
		case <-done:
			done = nil
			g.stop(0, "cancelled")
		case <-g.kill:
			g.kill = nil
			g.killStragglers()
		}
	}

	// Whatever the processes left behind gets the rest of the longest grace.
	cleanup(r, sigs, &Result{}, g.stopAt.Add(g.longestGrace()), g.log)
	g.tidy.Wait()
	return g.finish()
}

// member is a Process and what the group knows of it.
type member struct {
	Process
	state    State
	cmd      *exec.Cmd
	started  time.Time
	hist     history
	restarts int
	last     *Exit         // how the last run ended
	sent     uint64        // signals sent during the stop, as a bit mask
	killed   bool          // got SIGKILL at the deadline
	tidied   chan struct{} // closed once the last run left nothing behind
	standby  bool          // runs only while the group holds a lease for its type
	revoked  bool          // its lease was revoked: once exited, back to standby
	runs     int           // counts its starts, so that a timer of an earlier run is ignored

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
	kill bool // the grace of a revoked process is over
	run  int  // member.runs when the timer was set
}

type group struct {
	r      *Reaper
	opt    GroupOptions
	log    *slog.Logger
	events chan event
	quit   chan struct{}
	tidy   sync.WaitGroup // the clean-ups of what exited processes left

	members  []*member
	drain    *drain
	stopping bool
	stopAt   time.Time
	kill     <-chan time.Time
	request  string // what asked for the stop, when something did
	cause    string // what stopped the group by itself
	status   int
	leases   map[string]chan<- struct{} // Lease.Done of each type currently leased
}

// transition is the one place a process changes state: it records the
// state in m and in Health, and logs msg, when given, with the process's
// name and attrs.
func (g *group) transition(m *member, to State, level slog.Level, msg string, attrs ...any) {
	m.state = to
	pid := 0
	if to == StateRunning {
		pid = m.cmd.Process.Pid
	}
	var last *Exit
	if to == StateExited {
		last = m.last
	}
	g.opt.Health.update(m.Name, to, pid, m.restarts, last)
	if msg != "" {
		g.log.Log(context.Background(), level, msg, append([]any{"process", m.Name}, attrs...)...)
	}
}

// running reports whether the loop has anything left to wait for.
func (g *group) running() bool {
	for _, m := range g.members {
		if m.alive() || (!g.stopping && (m.state == StateBackoff || m.state == StateStandby)) {
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
	// A session of its own, so that the stop signal and SIGKILL reach it
	// and its descendants only as the group decides, and so that what it
	// leaves behind can be told apart from the other processes' leftovers
	// even after it has gone.
	cmd.SysProcAttr.Setsid = true
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
		m.last = &Exit{Code: se.Status()}
		g.transition(m, StateExited, slog.LevelError, "process could not start", "err", se)
		g.fail(fmt.Sprintf("%s could not start: %v", m.Name, se), se.Status())
		return
	}
	for _, p := range pipes {
		p.started()
	}
	m.cmd, m.started, m.sent, m.killed = cmd, time.Now(), 0, false
	m.runs++
	m.tidied = make(chan struct{})
	if m.restarts == 0 {
		g.transition(m, StateRunning, slog.LevelInfo, "process started", "pid", cmd.Process.Pid)
	} else {
		g.transition(m, StateRunning, slog.LevelInfo, "process restarted", "pid", cmd.Process.Pid, "restart", m.restarts)
	}
	m.reaped.Store(false)
	leader, tidied := cmd.Process.Pid, m.tidied
	g.tidy.Add(1)
	go func() {
		defer g.tidy.Done()
		e := g.r.Wait(cmd, exits)
		before := bootTicks()
		m.reaped.Store(true)
		left := make(chan struct{})
		go func() {
			defer close(left)
			g.stopLeftovers(m.Name, leader, before, m.Stop)
		}()
		// Report the exit once the output it wrote is out, so that
		// entry's lines about it come after the process's own, but not
		// later: what it left behind may hold the pipe.
		deadline := time.Now().Add(waitDelay)
		for _, p := range pipes {
			p.settle(deadline)
		}
		select {
		case g.events <- event{m: m, exit: e}:
		case <-g.quit:
		}
		<-left
		deadline = time.Now().Add(waitDelay)
		for _, p := range pipes {
			p.drain(deadline)
		}
		close(tidied)
	}()
}

// stopLeftovers stops what the process leader of name left behind when it
// exited (see leftovers): its stop signal now, SIGKILL once its grace has
// passed, and returns once none is left, or gives up killGrace later.
func (g *group) stopLeftovers(name string, leader int, before uint64, stop StopPolicy) {
	sig := stop.Signal
	kill := time.Now().Add(stop.Timeout)
	giveUp := kill.Add(killGrace)
	signalled := make(map[int]bool)
	logged := false
	for {
		procs, err := leftovers(leader, before)
		if err != nil {
			g.log.Warn("cannot list what the process left behind", "process", name, "err", err)
			return
		}
		if len(procs) == 0 {
			if logged {
				g.log.Info("what the process left behind is gone", "process", name)
			}
			return
		}
		now := time.Now()
		if now.After(giveUp) {
			g.log.Error("processes left behind would not die", "process", name, "count", len(procs))
			return
		}
		s, wait := sig, kill.Sub(now)
		if wait <= 0 {
			s, wait = syscall.SIGKILL, 50*time.Millisecond
		}
		if !logged {
			logged = true
			g.log.Info("stopping what the process left behind", "process", name, "count", len(procs), "signal", SignalName(s))
		}
		var todo []procStat
		for _, p := range procs {
			if s == syscall.SIGKILL || !signalled[p.pid] {
				signalled[p.pid] = true
				todo = append(todo, p)
			}
		}
		fds := signalProcs(todo, s)
		// Processes forked meanwhile escaped this pass: look again soon.
		waitAny(fds, min(wait, 200*time.Millisecond))
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// waitAny waits until one of the processes behind pidfds has exited, or d
// has passed.
func waitAny(fds []int, d time.Duration) {
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	if len(pfds) == 0 {
		time.Sleep(d)
		return
	}
	for {
		_, err := unix.Poll(pfds, int(d.Milliseconds())+1)
		if err != unix.EINTR {
			return
		}
	}
}

func (g *group) restart(m *member) {
	if g.stopping || m.state != StateBackoff {
		return
	}
	g.start(m)
}

func (g *group) exited(m *member, e Exit) {
	e = g.opt.Incidents.exited(m.Name, e, m.killed || g.stopping && g.clean(m, e))
	m.last = &e
	// The pidfd now, not at the next garbage collection.
	_ = m.cmd.Process.Release()
	attrs := []any{"pid", e.Pid, "exit", e.String()}
	defer g.settleLease(m.Type)
	if m.revoked && !g.stopping {
		g.backToStandby(m, attrs)
		return
	}
	if g.stopping {
		switch {
		case m.killed:
			g.transition(m, StateExited, slog.LevelWarn, "process killed", attrs...)
		case g.clean(m, e):
			g.transition(m, StateExited, slog.LevelInfo, "process stopped", attrs...)
		default:
			g.transition(m, StateExited, slog.LevelWarn, "process stopped", attrs...)
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
	g.transition(m, StateExited, level, "process exited", append(attrs, "uptime", uptime.Round(time.Millisecond))...)
	d := m.hist.next(g.opt.Restart, e, uptime, now, rand.Float64())
	switch {
	case d.restart:
		m.restarts++
		g.transition(m, StateBackoff, slog.LevelInfo, "restarting process", "restart", m.restarts, "backoff", d.delay.Round(time.Millisecond))
		tidied, run := m.tidied, m.runs
		go func() {
			// Not before the backoff, nor before what the last run left
			// behind is gone.
			select {
			case <-time.After(d.delay):
			case <-g.quit:
				return
			}
			select {
			case <-tidied:
			case <-g.quit:
				return
			}
			select {
			case g.events <- event{m: m, due: true, run: run}:
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
// a signal asked for the stop, and arms the first of their deadlines.
func (g *group) stop(sig syscall.Signal, reason string) {
	if g.stopping {
		return
	}
	g.drain.end()
	g.stopping = true
	g.stopAt = time.Now()
	if g.cause == "" {
		g.request = reason
	}
	g.opt.Health.SetPhase("stopping")
	n := 0
	for _, m := range g.members {
		switch m.state {
		case StateBackoff, StateStarting, StateStandby:
			g.transition(m, StateExited, 0, "")
		case StateRunning:
			n++
		}
	}
	g.log.Info("stopping", "reason", reason, "processes", n, "timeout", g.graces())
	defer g.settleLeases()
	for _, m := range g.members {
		if m.state != StateRunning {
			continue
		}
		s := m.Stop.Signal
		if sig != 0 {
			s = translate(sig, m.Stop.Signal)
		}
		g.transition(m, StateStopping, 0, "")
		g.signal(m, s)
	}
	g.armKill()
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
	if g.stopping && sig < maxSignal {
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
	now := time.Now()
	for _, m := range g.members {
		if !m.alive() || m.killed || m.reaped.Load() || now.Before(g.deadline(m)) {
			continue
		}
		pid := m.cmd.Process.Pid
		g.log.Warn("process did not stop in time, sending SIGKILL", "process", m.Name, "pid", pid, "timeout", m.Stop.Timeout)
		m.killed = true
		// The leader is not reaped, so its group id is not free for reuse;
		// the pidfd reaches it even if it left its group.
		_ = unix.Kill(-pid, unix.SIGKILL)
		_ = m.cmd.Process.Kill()
	}
	g.armKill()
}

// clean reports whether a process ended as asked: status 0, or the signal
// it was sent, directly or as a shell's 128+N.
func (g *group) clean(m *member, e Exit) bool {
	switch {
	case e.Signal != 0:
		return m.sent&(1<<e.Signal) != 0
	case signalOfStatus(e.Code) != 0:
		return m.sent&(1<<signalOfStatus(e.Code)) != 0
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
				g.status = Status(unix.SIGKILL)
				g.request += fmt.Sprintf("; %s did not stop within %s and was killed", m.Name, m.Stop.Timeout)
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
