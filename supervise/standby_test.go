package supervise

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGroupStandby: a type in standby starts when its lease is granted, stops at once when
// it is revoked (SIGKILL at the grace for one that ignores its stop signal) and goes back to
// standby; Done closes once its process is gone, and again when the group stops. Another
// type runs all along, and the group exits 0.
func TestGroupStandby(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "leases")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	send := func(line string) {
		t.Helper()
		if _, err := w.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	g := startGroup(t, "web: "+childCmd("report")+"\nbeat: "+childCmd("report")+"\nclock: "+childCmd("ignore")+"\n",
		"-standby", "beat,clock", "-leases", fifo, "-timeout", "1s", "-health")
	addr := g.expect(`msg=health addr=(\S+)`)[1]
	g.expectAll(`"process in standby: it runs in one replica at a time" process=beat.1`,
		`"process in standby: it runs in one replica at a time" process=clock.1`,
		`"process started" process=web.1`)

	g.expect(`^web.1 +\| ready report`)
	// A replica whose singletons run elsewhere is ready, and says why they do not run here.
	if resp, err := http.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz with beat and clock in standby: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	var st struct {
		Processes []struct{ Name, State string }
	}
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Processes) != 3 || st.Processes[1].State != "standby" || st.Processes[2].State != "standby" {
		t.Errorf("/status: %+v %v, want beat.1 and clock.1 in standby", st, err)
	}

	send("grant beat")
	g.expect(`^beat.1 +\| ready report`)
	send("revoke beat")
	g.expect(`"singleton lock lost: stopping at once" process=beat.1`)
	g.expect(`"process stopped: singleton lock lost" process=beat.1 pid=\d+ exit="exited with status 0"`)
	g.expect(`"process in standby: it runs in one replica at a time" process=beat.1`)
	g.expect(`"lease done" type=beat`)

	send("grant clock")
	g.expect(`^clock.1 +\| ready ignore`)
	send("revoke clock")
	g.expect(`"process did not stop in time, sending SIGKILL" process=clock.1`)
	g.expect(`"process stopped: singleton lock lost" process=clock.1 pid=\d+ exit="killed by SIGKILL"`)
	g.expect(`"lease done" type=clock`)

	send("grant beat")
	g.expect(`"process started" process=beat.1`)
	g.signal(syscall.SIGTERM)
	g.expect(`"lease done" type=beat`)
	if status, _ := g.wait(); status != 0 {
		t.Fatalf("status %d, want 0:\n%s", status, g.errOutput())
	}
}
