package supervise

import (
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// Lease grants or revokes this replica's right to run the processes of one
// type that GroupOptions.Standby holds in standby. Whoever decides (a lock
// shared across replicas) sends them on GroupOptions.Leases:
//
//   - Held: the type's processes start now, and run under the group's
//     restart policy as any other. The group closes Done once none of them
//     is left (after a revoke, or when the group stops; at once when it is
//     already stopping), and only then may the right be given up: the
//     process has exited, and so has whatever it left behind.
//   - not Held (Done nil): the right is gone. The processes get their stop
//     signal at once and SIGKILL when StopTimeout has passed, then go back
//     to standby; Done of the grant closes when they are gone.
//
// A grant for a type already leased, or a revoke of a type not leased, is
// ignored.
type Lease struct {
	Type string
	Held bool
	Done chan<- struct{}
}

// lease applies a grant or a revoke.
func (g *group) lease(l Lease) {
	if g.leases == nil {
		g.leases = make(map[string]chan<- struct{})
	}
	if l.Held {
		if _, ok := g.leases[l.Type]; ok || l.Done == nil {
			return
		}
		if g.stopping {
			close(l.Done)
			return
		}
		g.leases[l.Type] = l.Done
		for _, m := range g.members {
			if m.Type == l.Type && m.standby && m.state == StateStandby {
				m.revoked = false
				g.log.Info("singleton lock held: starting", "process", m.Name)
				g.start(m)
			}
		}
		g.settleLease(l.Type) // a start that failed stopped the group
		return
	}
	if _, ok := g.leases[l.Type]; !ok {
		return
	}
	for _, m := range g.members {
		if m.Type != l.Type || !m.standby {
			continue
		}
		m.revoked = true
		switch m.state {
		case StateRunning:
			if g.stopping {
				continue // already told to stop, under the group's deadline
			}
			grace := m.Stop.Timeout // its type's own grace
			g.transition(m, StateStopping, slog.LevelWarn, "singleton lock lost: stopping at once", "pid", m.cmd.Process.Pid, "timeout", grace)
			g.signal(m, m.Stop.Signal)
			m.sent |= 1 << m.Stop.Signal // what it ends with is judged as a requested stop
			run := m.runs
			time.AfterFunc(grace, func() {
				select {
				case g.events <- event{m: m, kill: true, run: run}:
				case <-g.quit:
				}
			})
		case StateBackoff:
			if !g.stopping {
				g.transition(m, StateStandby, slog.LevelInfo, "singleton lock lost: standby")
			}
		}
	}
	g.settleLease(l.Type)
}

// killRevoked kills a revoked process still there when its grace is over.
func (g *group) killRevoked(m *member, run int) {
	if run != m.runs || m.state != StateStopping || m.reaped.Load() {
		return
	}
	pid := m.cmd.Process.Pid
	g.log.Warn("process did not stop in time, sending SIGKILL", "process", m.Name, "pid", pid)
	m.killed = true
	_ = unix.Kill(-pid, unix.SIGKILL)
	_ = m.cmd.Process.Kill()
}

// backToStandby records the exit of a process whose lease was revoked.
func (g *group) backToStandby(m *member, attrs []any) {
	level := slog.LevelInfo
	if m.killed {
		level = slog.LevelWarn
	}
	g.transition(m, StateExited, level, "process stopped: singleton lock lost", attrs...)
	m.killed = false // not a straggler of the group's own stop
	g.transition(m, StateStandby, slog.LevelInfo, "process in standby: it runs in one replica at a time")
}

// settleLease closes the Done of typ's lease once none of its processes is
// left, nor anything they left behind.
func (g *group) settleLease(typ string) {
	done, ok := g.leases[typ]
	if !ok {
		return
	}
	var tidied []chan struct{}
	for _, m := range g.members {
		if m.Type != typ || !m.standby {
			continue
		}
		if m.alive() || (m.state == StateBackoff && !g.stopping) {
			return
		}
		if m.tidied != nil {
			tidied = append(tidied, m.tidied)
		}
	}
	delete(g.leases, typ)
	g.tidy.Add(1)
	go func() {
		defer g.tidy.Done()
		for _, t := range tidied {
			<-t
		}
		close(done)
	}()
}

func (g *group) settleLeases() {
	for typ := range g.leases {
		g.settleLease(typ)
	}
}
