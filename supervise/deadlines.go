package supervise

import (
	"fmt"
	"strings"
	"time"
)

// Each process has its own grace (a celery worker's warm shutdown needs
// more than gunicorn): all get their stop signals at once, and each is
// killed at its own deadline, so the stop takes as long as the slowest
// process needs, never the sum and never more than the longest grace.

// deadline is when m gets SIGKILL if it is still there.
func (g *group) deadline(m *member) time.Time { return g.stopAt.Add(m.Stop.Timeout) }

// armKill sets g.kill to fire at the earliest deadline of a process still
// stopping, or to nil when none is left to kill.
func (g *group) armKill() {
	var next time.Time
	for _, m := range g.members {
		if !m.alive() || m.killed || m.reaped.Load() {
			continue
		}
		if d := g.deadline(m); next.IsZero() || d.Before(next) {
			next = d
		}
	}
	g.kill = nil
	if !next.IsZero() {
		g.kill = time.After(time.Until(next))
	}
}

// longestGrace bounds the clean-up of what the processes left behind.
func (g *group) longestGrace() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.Stop.Timeout)
	}
	return d
}

// graces describes the graces for the log: "8s" when one fits all, else
// per type, "web 2s, worker 8s".
func (g *group) graces() string {
	var parts []string
	seen := map[string]bool{}
	same := true
	for _, m := range g.members {
		if m.Stop.Timeout != g.members[0].Stop.Timeout {
			same = false
		}
		if !seen[m.Type] {
			seen[m.Type] = true
			parts = append(parts, fmt.Sprintf("%s %s", m.Type, m.Stop.Timeout))
		}
	}
	if same && len(g.members) > 0 {
		return g.members[0].Stop.Timeout.String()
	}
	return strings.Join(parts, ", ")
}
