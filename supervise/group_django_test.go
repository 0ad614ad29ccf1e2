package supervise

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

const testBroker = "amqp://guest:guest@127.0.0.1:5672//"

// TestGroupGunicornCelery runs the Django stack's processes from the
// Debian packages under a PID 1 in Procfile mode: gunicorn with a slow
// view, a celery worker and celery beat on the local RabbitMQ. A SIGKILLed
// worker is restarted and processes tasks again; TERM then stops all three
// in parallel, letting the in-flight request and the running task finish.
func TestGroupGunicornCelery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app, err := filepath.Abs("testdata/groupapp")
	if err != nil {
		t.Fatal(err)
	}
	queue := throwaway.LocalQueue(t, "entry_test_group")
	addr := throwaway.FreeAddr(t)
	env := []string{"GROUP_QUEUE=" + queue, "GROUP_DIR=" + dir, "CELERY_BROKER_URL=" + testBroker, "PYTHONUNBUFFERED=1"}
	g := startGroupEnv(t, env, fmt.Sprintf(`
web: /usr/bin/gunicorn --chdir %[1]s -b %[2]s -w 2 --graceful-timeout 20 web:application
worker: /usr/bin/python3 -m celery --workdir %[1]s -A tasks worker -c 1 --without-gossip --without-mingle --without-heartbeat -l info
beat: /usr/bin/python3 -m celery --workdir %[1]s -A tasks beat -s %[3]s/beat-schedule -l info
`, app, addr, dir), "-timeout", "15s", "-initial", "300ms")

	g.expectAll(`web.1 +\| .*Booting worker`, `worker.1 +\| .*ready\.`, `beat.1 +\| .*beat: Starting`)
	// beat -> RabbitMQ -> worker.
	waitFile(t, g, filepath.Join(dir, "ticks"))

	killed := g.child("worker", "celery")
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g.expect(`"process exited" process=worker.1 pid=\d+ exit="killed by SIGKILL"`)
	g.expect(`"restarting process" process=worker.1 restart=1 backoff=`)
	g.expect(`"process restarted" process=worker.1 pid=\d+ restart=1`)
	g.expect(`worker.1 +\| .*ready\.`)
	sendTask(t, app, env, "touch", filepath.Join(dir, "after-restart"))
	waitFile(t, g, filepath.Join(dir, "after-restart"))

	// A request and a task in flight when TERM comes.
	replies := getInBackground("http://" + addr + "/slow")
	done := filepath.Join(dir, "slow-done")
	sendTask(t, app, env, "slow", done)
	g.expectAll(`web.1 +\| slow request started`, `worker.1 +\| .*slow task started`)
	sent := time.Now()
	g.signal(syscall.SIGTERM)
	status, at := g.wait()
	if status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	// Each needs ~2 s to finish its work; serially it would be 4 s and more.
	if took := at.Sub(sent); took > 7*time.Second {
		t.Errorf("stop took %v, want about 2 s", took)
	}
	select {
	case r := <-replies:
		if r.err != nil || r.body != "slow done\n" {
			t.Errorf("in-flight request: got %q, %v, want %q", r.body, r.err, "slow done\n")
		}
	case <-time.After(10 * time.Second):
		t.Error("in-flight request got no reply")
	}
	if _, err := os.Stat(done); err != nil {
		t.Errorf("running task did not complete: %v\n%s", err, g.errOutput())
	}
	out := g.errOutput()
	for _, want := range []string{"worker: Warm shutdown", `"process stopped" process=web.1`, `"process stopped" process=worker.1`, `"process stopped" process=beat.1`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}
}

// sendTask publishes one task with the app's own client.
func sendTask(t *testing.T, app string, env []string, task, arg string) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "send.py", task, arg)
	cmd.Dir = app
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send %s: %v\n%s", task, err, out)
	}
}

// waitFile waits for a task to have written path.
func waitFile(t *testing.T, g *groupRun, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written:\n%s", path, g.errOutput())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
