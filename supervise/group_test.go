package supervise

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGroupMillionLines: 1,000,000 lines from three processes, 100,000 of
// them written by one after TERM right before it exits, all arrive whole,
// in order and once each, and so does its final partial line.
func TestGroupMillionLines(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("a: %s\nb: %s\nc: %s\n",
		childCmd("lines", "450000", "A"), childCmd("lines", "450000", "B"), childCmd("burst", "100000", "C")))
	g.expectAll(`c.1 +\| ready burst`, `a.1 +\| wrote 450000`, `b.1 +\| wrote 450000`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Fatalf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	want := map[string]int{"a.1": 450000, "b.1": 450000, "c.1": 100000}
	tags := map[string]string{"a.1": "A", "b.1": "B", "c.1": "C"}
	next := map[string]int{}
	partial := 0
	f, err := os.Open(g.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, line, ok := strings.Cut(sc.Text(), " | ")
		if !ok {
			t.Fatalf("line without prefix: %q", sc.Text())
		}
		name = strings.TrimSpace(name)
		if name == "c.1" && line == "no newline at the end" {
			partial++
			continue
		}
		n := next[name]
		if wantLine := fmt.Sprintf("%s %d %s", tags[name], n, payload(n)); line != wantLine {
			t.Fatalf("%s: got line %q, want %q", name, line, wantLine)
		}
		next[name]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for name, n := range want {
		if next[name] != n {
			t.Errorf("%s: got %d lines, want %d", name, next[name], n)
		}
	}
	if partial != 1 {
		t.Errorf("got the final partial line %d times, want once", partial)
	}
}

// TestGroupJSON checks json mode end to end, partial line included.
func TestGroupJSON(t *testing.T) {
	t.Parallel()
	g := startGroup(t, "web: "+childCmd("burst", "1000", "W")+"\n", "-format", "json")
	g.expect(`ready burst`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Fatalf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	sc := bufio.NewScanner(strings.NewReader(g.output()))
	n := 0
	for sc.Scan() {
		var rec struct{ Time, Process, Stream, Line string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil || rec.Process != "web.1" || rec.Stream != "stdout" {
			t.Fatalf("got %+v", rec)
		}
		want := fmt.Sprintf("W %d %s", n, payload(n))
		if n == 1000 {
			want = "no newline at the end"
		}
		if rec.Line != want {
			t.Fatalf("got line %q, want %q", rec.Line, want)
		}
		n++
	}
	if n != 1001 {
		t.Errorf("got %d records, want 1001", n)
	}
}

// TestGroupPrompt: a partial line shows once the process has been idle.
func TestGroupPrompt(t *testing.T) {
	t.Parallel()
	g := startGroup(t, "web: "+childCmd("prompt")+"\n")
	g.expect(`^web.1 +\| Password: $`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
}

// TestGroupRestart: a crashing process is restarted with growing backoff,
// each restart logged with its count and delay, while the other runs on.
func TestGroupRestart(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: %s\nworker: %s\n", childCmd("report"), childCmd("crash", "3")),
		"-initial", "100ms", "-max", "10s", "-limit", "100")
	var delays []time.Duration
	for i := 1; i <= 4; i++ {
		g.expect(`"process exited" process=worker.1 pid=\d+ exit="exited with status 3"`)
		m := g.expect(`"restarting process" process=worker.1 restart=(\d+) backoff=(\S+)`)
		if m[1] != strconv.Itoa(i) {
			t.Errorf("got restart=%s, want %d", m[1], i)
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatal(err)
		}
		delays = append(delays, d)
		if i < 4 {
			g.expect(fmt.Sprintf(`"process restarted" process=worker.1 pid=\d+ restart=%d`, i))
		}
	}
	// Stop during the fourth backoff (800 ms): nothing is left to fail.
	g.signal(syscall.SIGTERM)
	for i, min := range []time.Duration{100, 200, 400, 800} {
		if d := delays[i]; d < min*time.Millisecond || d > min*time.Millisecond*11/10 {
			t.Errorf("backoff %d: got %v, want %v plus up to 10%%", i+1, d, min*time.Millisecond)
		}
	}
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0 after a requested stop:\n%s", status, g.errOutput())
	}
	if !strings.Contains(g.errOutput(), "web.1    | got SIGTERM") {
		t.Errorf("web.1 did not get SIGTERM:\n%s", g.errOutput())
	}
	if strings.Contains(g.errOutput(), "restart=5") {
		t.Errorf("restarted during the stop:\n%s", g.errOutput())
	}
}

// TestGroupCrashLoop: more than Limit restarts within Window stops
// everything, within the bound, with the process's status and a last line
// that names it.
func TestGroupCrashLoop(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: %s\nworker: %s\n", childCmd("report"), childCmd("crash", "3")),
		"-initial", "20ms", "-max", "80ms", "-limit", "3", "-window", "1m")
	status, at := g.wait()
	if status != 3 {
		t.Errorf("got status %d, want 3:\n%s", status, g.errOutput())
	}
	// The bound is 20+40+80 ms of backoff plus four starts of the test
	// binary: generous, since this checks the loop ends, not its speed.
	if took := at.Sub(g.began); took > 15*time.Second {
		t.Errorf("crash loop detected after %v", took)
	}
	if got := g.lastLine(); !strings.Contains(got, "stopped: worker.1 is crash-looping: exited with status 3 after 3 restarts") || !strings.Contains(got, "status=3") {
		t.Errorf("got last line %q, want it to name worker.1 and the crash loop", got)
	}
	if !strings.Contains(g.errOutput(), "web.1    | got SIGTERM") {
		t.Errorf("web.1 was not stopped:\n%s", g.errOutput())
	}
}

// TestGroupNever: with policy never, the first exit stops all, and entry's
// status is the process's, or 1 when it exited 0.
func TestGroupNever(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 5} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			g := startGroup(t, fmt.Sprintf("web: %s\nworker: %s\n", childCmd("report"), childCmd("crash", strconv.Itoa(code))),
				"-restart", "never")
			want := max(code, 1)
			if status, _ := g.wait(); status != want {
				t.Errorf("got status %d, want %d:\n%s", status, want, g.errOutput())
			}
			if got := g.lastLine(); !strings.Contains(got, fmt.Sprintf("stopped: worker.1 exited with status %d and restart policy is never", code)) {
				t.Errorf("got last line %q", got)
			}
			if strings.Contains(g.errOutput(), "restarting") {
				t.Errorf("restarted with policy never:\n%s", g.errOutput())
			}
		})
	}
}

// TestGroupOnFailureCleanExit: with on-failure, a process that exits 0 is
// not restarted, so everything stops, non-zero.
func TestGroupOnFailureCleanExit(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: %s\nonce: %s\n", childCmd("report"), childCmd("crash", "0")))
	if status, _ := g.wait(); status != 1 {
		t.Errorf("got status %d, want 1:\n%s", status, g.errOutput())
	}
	if got := g.lastLine(); !strings.Contains(got, "once.1 exited with status 0 and restart policy is on-failure") {
		t.Errorf("got last line %q", got)
	}
}

// TestGroupParallelStop: three processes that each need a second to stop
// stop together, not one after the other: each got TERM before any was
// done cleaning up.
func TestGroupParallelStop(t *testing.T) {
	t.Parallel()
	cmd := childCmd("slowstop", "1s")
	g := startGroup(t, fmt.Sprintf("a: %s\nb: %s\nc: %s\n", cmd, cmd, cmd))
	g.expectAll(`a.1 +\| ready`, `b.1 +\| ready`, `c.1 +\| ready`)
	sent := time.Now()
	g.signal(syscall.SIGTERM)
	status, at := g.wait()
	if status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	var lastTerm, firstDone int64
	terms, dones := 0, 0
	for _, l := range strings.Split(g.output(), "\n") {
		_, l, _ = strings.Cut(l, "| ")
		var ns int64
		if _, err := fmt.Sscanf(l, "term at %d", &ns); err == nil {
			terms++
			lastTerm = max(lastTerm, ns)
		}
		if _, err := fmt.Sscanf(l, "clean stop at %d", &ns); err == nil {
			dones++
			if firstDone == 0 || ns < firstDone {
				firstDone = ns
			}
		}
	}
	if terms != 3 || dones != 3 {
		t.Fatalf("got %d TERMs and %d clean stops, want 3 of each:\n%s", terms, dones, g.output())
	}
	if lastTerm >= firstDone {
		t.Errorf("a process got TERM %v after another had stopped: the stop is serial", time.Duration(lastTerm-firstDone))
	}
	t.Logf("stop took %v", at.Sub(sent))
	if got := g.lastLine(); !strings.Contains(got, "stopped: received SIGTERM; every process exited") || !strings.Contains(got, "status=0") {
		t.Errorf("got last line %q", got)
	}
}

// TestGroupSignals: per-type stop signals, TERM translated to each, other
// signals forwarded to every process.
func TestGroupSignals(t *testing.T) {
	t.Parallel()
	cmd := childCmd("report")
	g := startGroup(t, fmt.Sprintf("web: %s\nnginx: %s\nuwsgi: %s\n", cmd, cmd, cmd), "-stop", "nginx=SIGQUIT,uwsgi=SIGINT")
	g.expectAll(`web.1 +\| ready`, `nginx.1 +\| ready`, `uwsgi.1 +\| ready`)
	// One at a time: a Go child gets pending signals in number order.
	g.signal(syscall.SIGHUP)
	g.expectAll(`web.1 +\| got SIGHUP`, `nginx.1 +\| got SIGHUP`, `uwsgi.1 +\| got SIGHUP`)
	g.signal(syscall.SIGUSR1)
	g.expectAll(`web.1 +\| got SIGUSR1`, `nginx.1 +\| got SIGUSR1`, `uwsgi.1 +\| got SIGUSR1`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	got := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(g.errOutput()), "\n") {
		name, line, _ := strings.Cut(l, " | ")
		if strings.HasPrefix(line, "got ") {
			got[strings.TrimSpace(name)] = append(got[strings.TrimSpace(name)], line)
		}
	}
	for name, stop := range map[string]string{"web.1": "SIGTERM", "nginx.1": "SIGQUIT", "uwsgi.1": "SIGINT"} {
		want := "got SIGHUP,got SIGUSR1,got " + stop
		if s := strings.Join(got[name], ","); s != want {
			t.Errorf("%s: got %q, want %q", name, s, want)
		}
	}
}

// TestGroupKill: a process that ignores its stop signal is killed at the
// deadline, and the status says so; a compound shell command is stopped
// through its process group.
func TestGroupKill(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("stubborn: %s\nshell: while :; do sleep 0.05; done\n", childCmd("ignore")), "-timeout", "300ms")
	g.expectAll(`ready ignore`, `"process started" process=shell.1`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 137 {
		t.Errorf("got status %d, want 137:\n%s", status, g.errOutput())
	}
	out := g.errOutput()
	if !strings.Contains(out, "\"process did not stop in time, sending SIGKILL\" process=stubborn.1") {
		t.Errorf("no SIGKILL logged for stubborn.1:\n%s", out)
	}
	if !strings.Contains(out, `"process stopped" process=shell.1 pid=`) || strings.Contains(out, "process=shell.1 pid=1 timeout") {
		t.Errorf("shell.1 did not stop on TERM to its group:\n%s", out)
	}
	if got := g.lastLine(); !strings.Contains(got, "stubborn.1 did not stop within 300ms and was killed") {
		t.Errorf("got last line %q", got)
	}
}

// TestGroupStartFailure: a program that does not exist stops the group
// with 127.
func TestGroupStartFailure(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: %s\nbad: /nonexistent/program\n", childCmd("report")))
	if status, _ := g.wait(); status != 127 {
		t.Errorf("got status %d, want 127:\n%s", status, g.errOutput())
	}
	if got := g.lastLine(); !strings.Contains(got, "stopped: bad.1 could not start") {
		t.Errorf("got last line %q", got)
	}
}

// TestGroupHealth: /readyz is 503 while a process is in backoff and 200
// when all run; /status counts restarts.
func TestGroupHealth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Fails twice quickly, then stays up: the third start finds two lines.
	flaky := fmt.Sprintf(`n=$(cat %[1]s/starts 2>/dev/null | wc -l); echo x >> %[1]s/starts; [ "$n" -ge 2 ] && exec %[2]s; exit 4`, dir, childCmd("report"))
	g := startGroup(t, fmt.Sprintf("web: %s\nflaky: %s\n", childCmd("report"), flaky),
		"-health", "-initial", "1500ms", "-max", "1500ms")
	addr := g.expect(`msg=health addr=(\S+)`)[1]
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	g.expect(`"restarting process" process=flaky.1 restart=1`)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "flaky.1 backoff") {
		t.Errorf("during backoff: got /readyz %d %q, want 503 naming flaky.1", code, body)
	}
	g.expect(`"restarting process" process=flaky.1 restart=2`)
	g.expect(`"process restarted" process=flaky.1 pid=\d+ restart=2`)
	g.expect(`flaky.1 +\| ready report`)
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("all running: got /readyz %d %q, want 200", code, body)
	}
	_, body := get("/status")
	var st struct {
		Phase     string
		Processes []struct {
			Name, State string
			Restarts    int
			LastExit    struct{ Status int } `json:"last_exit"`
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status %q: %v", body, err)
	}
	if len(st.Processes) != 2 || st.Processes[1].Name != "flaky.1" || st.Processes[1].Restarts != 2 ||
		st.Processes[1].State != string(StateRunning) || st.Processes[1].LastExit.Status != 4 {
		t.Errorf("got /status %s, want flaky.1 running after 2 restarts, last status 4", body)
	}
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
}

// TestGroupLeftovers: a descendant that escaped its process group is
// stopped once the processes are gone, and RunGroup returns at once.
func TestGroupLeftovers(t *testing.T) {
	t.Parallel()
	g := startGroup(t, fmt.Sprintf("web: setsid sleep 1000 >/dev/null 2>&1 & exec %s\n", childCmd("report")))
	g.expect(`web.1 +\| ready`)
	g.signal(syscall.SIGTERM)
	if status, _ := g.wait(); status != 0 {
		t.Errorf("got status %d, want 0:\n%s", status, g.errOutput())
	}
	out := g.errOutput()
	if !strings.Contains(out, "web.1 | got SIGTERM") || !strings.Contains(out, `leftover processes" count=1`) {
		t.Errorf("want web.1 stopped, then the leftover sleep:\n%s", out)
	}
	if got := g.lastLine(); !strings.Contains(got, "stopped: received SIGTERM; every process exited") {
		t.Errorf("got last line %q", got)
	}
}
