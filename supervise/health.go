package supervise

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// State is where a process is in its life, as /status shows it. A process
// goes starting → running → (stopping →) exited, and from exited to backoff
// and starting again when it is restarted; a singleton (GroupOptions.Standby)
// waits in standby until its lease comes, and goes back to standby when the
// lease is revoked and it has exited. Only group.transition changes it.
type State string

const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateBackoff  State = "backoff"
	StateStopping State = "stopping"
	StateExited   State = "exited"
	StateStandby  State = "standby"
)

// Health records entry's phase ("waiting", "release", "running",
// "stopping") and the state of each process, and serves them over HTTP.
// It is safe for concurrent use; a nil *Health records nothing.
type Health struct {
	now   func() time.Time
	start time.Time

	mu    sync.Mutex
	phase string
	procs []*procHealth
	byKey map[string]*procHealth
}

type procHealth struct {
	Name     string     `json:"name"`
	Type     string     `json:"type"`
	State    State      `json:"state"`
	Pid      int        `json:"pid,omitempty"`
	Restarts int        `json:"restarts"`
	Since    time.Time  `json:"since"`
	LastExit *exitState `json:"last_exit,omitempty"`
}

type exitState struct {
	Status int       `json:"status"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// NewHealth returns a Health in phase "starting".
func NewHealth() *Health {
	return &Health{now: time.Now, start: time.Now(), phase: "starting", byKey: make(map[string]*procHealth)}
}

// SetPhase records the phase entry is in.
func (h *Health) SetPhase(phase string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.phase = phase
}

// add registers a process in state starting.
func (h *Health) add(name, typ string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.byKey[name]; ok {
		return
	}
	p := &procHealth{Name: name, Type: typ, State: StateStarting, Since: h.now()}
	h.procs = append(h.procs, p)
	h.byKey[name] = p
}

// update records the state of a process: pid 0 keeps the last pid, and
// last, when set, is how it just ended.
func (h *Health) update(name string, state State, pid, restarts int, last *Exit) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.byKey[name]
	if !ok {
		return
	}
	now := h.now()
	if p.State != state {
		p.State, p.Since = state, now
	}
	if pid != 0 {
		p.Pid = pid
	}
	if state == StateStandby {
		p.Pid = 0 // it runs in another replica, if anywhere
	}
	p.Restarts = restarts
	if last != nil {
		p.LastExit = &exitState{Status: last.Status(), Reason: last.String(), At: now}
	}
}

// notReady returns why entry is not ready, or "" when it is: the phase is
// running and so is every process.
func (h *Health) notReady() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.phase != "running" {
		return "phase " + h.phase
	}
	for _, p := range h.procs {
		// A singleton that runs in another replica does not make this one unready.
		if p.State != StateRunning && p.State != StateStandby {
			return p.Name + " " + string(p.State)
		}
	}
	return ""
}

// Handler serves /livez (200 while entry runs), /readyz (200 when ready,
// else 503 and the reason) and /status (JSON: phase, uptime and each
// process's state, pid, restarts and last exit).
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := h.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.status())
	})
	return mux
}

type status struct {
	Phase     string       `json:"phase"`
	Ready     bool         `json:"ready"`
	Uptime    float64      `json:"uptime_seconds"`
	Processes []procStatus `json:"processes"`
}

type procStatus struct {
	procHealth
	Uptime float64 `json:"uptime_seconds,omitempty"`
}

func (h *Health) status() status {
	ready := h.notReady() == ""
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	s := status{Phase: h.phase, Ready: ready, Uptime: now.Sub(h.start).Seconds(), Processes: []procStatus{}}
	for _, p := range h.procs {
		ps := procStatus{procHealth: *p}
		if p.State == StateRunning {
			ps.Uptime = now.Sub(p.Since).Seconds()
		}
		s.Processes = append(s.Processes, ps)
	}
	return s
}
