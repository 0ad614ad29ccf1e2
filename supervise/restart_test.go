package supervise

import (
	"syscall"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{5, 0, 16 * time.Second},
		{6, 0, 30 * time.Second},
		{60, 0, 30 * time.Second},
		{1000, 0, 30 * time.Second},
		{1, 0.5, 1050 * time.Millisecond},
		{6, 0.999, 30*time.Second + 2997*time.Millisecond},
	}
	for _, tt := range tests {
		if got := backoff(time.Second, 30*time.Second, tt.n, tt.jitter); got != tt.want {
			t.Errorf("backoff(1s, 30s, %d, %v): got %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
}

func TestRestartWants(t *testing.T) {
	ok, fail, killed := Exit{Code: 0}, Exit{Code: 1}, Exit{Signal: syscall.SIGKILL}
	tests := []struct {
		policy string
		e      Exit
		want   bool
	}{
		{RestartNever, fail, false},
		{RestartNever, ok, false},
		{RestartOnFailure, ok, false},
		{RestartOnFailure, fail, true},
		{RestartOnFailure, killed, true},
		{"", fail, true},
		{RestartAlways, ok, true},
		{RestartAlways, killed, true},
		{"bogus", fail, false},
	}
	for _, tt := range tests {
		if got := (Restart{Policy: tt.policy}).wants(tt.e); got != tt.want {
			t.Errorf("policy %q, %v: got restart %v, want %v", tt.policy, tt.e, got, tt.want)
		}
	}
}

// TestHistory replays exits on a fake clock: a process that fails at once
// forever, with the defaults, is given up within the documented bound.
func TestHistory(t *testing.T) {
	r := Restart{Policy: RestartOnFailure, Limit: DefaultRestartLimit}.withDefaults()
	var h history
	now := time.Unix(1e9, 0)
	start := now
	var delays []time.Duration
	for {
		d := h.next(r, Exit{Code: 1}, 0, now, 0.999)
		if d.crashing {
			break
		}
		if !d.restart {
			t.Fatalf("got no restart and no crash loop")
		}
		delays = append(delays, d.delay)
		now = now.Add(d.delay)
	}
	if len(delays) != 5 {
		t.Errorf("got %d restarts, want 5", len(delays))
	}
	if took := now.Sub(start); took > 34100*time.Millisecond || took < 31*time.Second {
		t.Errorf("gave up after %v, want the documented ~31-34 s", took)
	}
}

func TestHistoryResetAndWindow(t *testing.T) {
	r := Restart{Policy: RestartAlways, Limit: 2, Window: time.Minute, Initial: time.Second, Max: 10 * time.Second}.withDefaults()
	var h history
	t0 := time.Unix(1e9, 0)
	steps := []struct {
		at     time.Duration
		uptime time.Duration
		want   decision
	}{
		{0, time.Second, decision{restart: true, delay: time.Second}},
		{5 * time.Second, time.Second, decision{restart: true, delay: 2 * time.Second}},
		// Third within the minute: a crash loop.
		{9 * time.Second, time.Second, decision{crashing: true}},
		// Long after: the window is empty again, and a long uptime
		// resets the backoff.
		{200 * time.Second, 10 * time.Second, decision{restart: true, delay: time.Second}},
		{210 * time.Second, time.Second, decision{restart: true, delay: 2 * time.Second}},
		{220 * time.Second, time.Second, decision{crashing: true}},
	}
	for i, s := range steps {
		if got := h.next(r, Exit{}, s.uptime, t0.Add(s.at), 0); got != s.want {
			t.Errorf("step %d: got %+v, want %+v", i, got, s.want)
		}
	}
}

func TestHistoryLimits(t *testing.T) {
	now := time.Unix(1e9, 0)
	var h history
	if d := h.next(Restart{Limit: 0}.withDefaults(), Exit{Code: 1}, 0, now, 0); !d.crashing {
		t.Errorf("limit 0: got %+v, want a crash loop at once", d)
	}
	h = history{}
	for i := range 100 {
		if d := h.next(Restart{Limit: -1}.withDefaults(), Exit{Code: 1}, 0, now, 0); !d.restart {
			t.Fatalf("limit -1, restart %d: got %+v, want a restart", i, d)
		}
	}
}
