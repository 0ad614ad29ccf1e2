package supervise

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	h := NewHealth()
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	check := func(step, path string, want int, wantBody string) {
		t.Helper()
		code, body := get(path)
		if code != want || !strings.Contains(body, wantBody) {
			t.Errorf("%s: %s got %d %q, want %d with %q", step, path, code, body, want, wantBody)
		}
	}

	h.SetPhase("waiting")
	check("waiting", "/livez", 200, "ok")
	check("waiting", "/readyz", 503, "phase waiting")
	h.SetPhase("release")
	check("release", "/readyz", 503, "phase release")

	h.add("web.1", "web")
	h.add("worker.1", "worker")
	h.SetPhase("running")
	check("starting", "/readyz", 503, "web.1 starting")
	h.update("web.1", StateRunning, 10, 0, nil)
	h.update("worker.1", StateRunning, 11, 0, nil)
	check("running", "/readyz", 200, "ready")

	h.update("worker.1", StateExited, 0, 0, &Exit{Pid: 11, Signal: syscall.SIGKILL})
	h.update("worker.1", StateBackoff, 0, 1, nil)
	check("backoff", "/readyz", 503, "worker.1 backoff")
	h.update("worker.1", StateRunning, 12, 1, nil)
	check("restarted", "/readyz", 200, "ready")

	_, body := get("/status")
	var st struct {
		Phase     string
		Ready     bool
		Uptime    float64 `json:"uptime_seconds"`
		Processes []struct {
			Name, Type, State string
			Pid, Restarts     int
			Since             time.Time
			LastExit          *struct {
				Status int
				Reason string
			} `json:"last_exit"`
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status %q: %v", body, err)
	}
	if st.Phase != "running" || !st.Ready || len(st.Processes) != 2 {
		t.Fatalf("got status %s", body)
	}
	w := st.Processes[1]
	if w.Name != "worker.1" || w.Type != "worker" || w.State != string(StateRunning) || w.Pid != 12 || w.Restarts != 1 {
		t.Errorf("got worker %+v, want running, pid 12, 1 restart", w)
	}
	if w.LastExit == nil || w.LastExit.Status != 137 || w.LastExit.Reason != "killed by SIGKILL" {
		t.Errorf("got last exit %+v, want 137 killed by SIGKILL", w.LastExit)
	}

	h.SetPhase("stopping")
	check("stopping", "/readyz", 503, "phase stopping")
	check("stopping", "/livez", 200, "ok")
}

func TestHealthNil(t *testing.T) {
	var h *Health
	h.SetPhase("running")
	h.add("web.1", "web")
	h.update("web.1", StateRunning, 1, 0, &Exit{})
}

func TestHealthConcurrent(t *testing.T) {
	h := NewHealth()
	h.SetPhase("running")
	h.add("web.1", "web")
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			h.update("web.1", StateRunning, i+1, i, nil)
			h.update("web.1", StateExited, 0, i, &Exit{Pid: i + 1, Code: 1})
			h.update("web.1", StateBackoff, 0, i+1, nil)
		}
	}()
	for range 50 {
		resp, err := http.Get(srv.URL + "/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	<-done
}
