package integration

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

// clockLine is one line the clock process appends: its replica's id and the time.
type clockLine struct {
	id string
	at time.Time
}

// readClock parses the shared file of the clock processes.
func readClock(t *testing.T, path string) []clockLine {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []clockLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, ts, ok := strings.Cut(sc.Text(), " ")
		sec, frac, ok2 := strings.Cut(ts, ".")
		if !ok || !ok2 {
			continue // a line being written
		}
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, clockLine{id, time.Unix(s, ns)})
	}
	return out
}

// clockWriter waits until a line written after since comes from a replica other than
// not, and returns that replica and when its first line after since was written.
func clockWriter(t *testing.T, path string, since time.Time, not string, d time.Duration) (string, time.Time) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, l := range readClock(t, path) {
			if l.at.After(since) && l.id != not {
				return l.id, l.at
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica but %q wrote within %s", not, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clockLines waits until replica id has written n lines after since.
func clockLines(t *testing.T, path, id string, since time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, l := range readClock(t, path) {
			if l.id == id && l.at.After(since) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s wrote %d lines, want %d", id, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clockSegments splits the file into runs of one writer, and fails the test if two
// writers interleave: a replica that wrote, was followed by another, and wrote again.
func clockSegments(t *testing.T, lines []clockLine) [][]clockLine {
	t.Helper()
	var segs [][]clockLine
	seen := map[string]bool{}
	for i, l := range lines {
		if i > 0 && l.id == lines[i-1].id {
			segs[len(segs)-1] = append(segs[len(segs)-1], l)
			continue
		}
		if seen[l.id] {
			t.Errorf("replica %s wrote again at %s after another replica wrote: two writers at once", l.id, l.at.Format("15:04:05.000"))
		}
		if i > 0 && !l.at.After(lines[i-1].at) {
			t.Errorf("replica %s wrote at %s, before %s's last line at %s", l.id, l.at.Format("15:04:05.000"), lines[i-1].id, lines[i-1].at.Format("15:04:05.000"))
		}
		seen[l.id] = true
		segs = append(segs, []clockLine{l})
	}
	return segs
}

// netns is a network namespace joined to the test's by a veth pair: the host end has
// host, the namespace's end has peer.
type netns struct {
	name, hostIf, host, peer string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := rand.N(250) + 1
	id := strconv.Itoa(os.Getpid()%10000) + "x" + strconv.Itoa(n)
	ns := &netns{name: "entryfleet" + id, hostIf: "vfh" + id,
		host: fmt.Sprintf("10.213.%d.1", n), peer: fmt.Sprintf("10.213.%d.2", n)}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	peerIf := "vfn" + id
	ip("link", "add", ns.hostIf, "type", "veth", "peer", "name", peerIf)
	t.Cleanup(func() { exec.Command("ip", "link", "del", ns.hostIf).Run() })
	ip("link", "set", peerIf, "netns", ns.name)
	ip("addr", "add", ns.host+"/30", "dev", ns.hostIf)
	ip("link", "set", ns.hostIf, "up")
	ip("-n", ns.name, "addr", "add", ns.peer+"/30", "dev", peerIf)
	ip("-n", ns.name, "link", "set", peerIf, "up")
	ip("-n", ns.name, "link", "set", "lo", "up")
	return ns
}

// cut takes the host end of the link down: from then on neither side hears from the other,
// and nothing tells either (no reset, no FIN), as in a partition.
func (ns *netns) cut(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", ns.hostIf, "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set down: %v\n%s", err, out)
	}
}

// TestFleetSingletonClock: eight replicas with ENTRY_SINGLETON=clock, the clock appending
// its replica's id to a shared file every 100 ms. Exactly one writes at any moment; when
// the holder's namespace is killed, another writes within 5 s; when the new holder gets
// SIGTERM, a third takes over within 5 s; when the holder's network is cut (its own
// network namespace), it stops its clock before any other replica starts one.
func TestFleetSingletonClock(t *testing.T) {
	ns := newNetns(t)
	const pw = "fleet-pw"
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{
		Password:  pw,
		Databases: []string{"app"},
		HBA:       []string{"host all all " + ns.peer + "/32 scram-sha-256"},
		Settings:  map[string]string{"listen_addresses": "127.0.0.1," + ns.host},
	})
	pg.StartAndWait()

	dir := t.TempDir()
	clock := filepath.Join(dir, "clock")
	procfile := filepath.Join(dir, "Procfile")
	line := fmt.Sprintf(`clock: sh -c 'while :; do echo "$REPLICA $(date +%%s.%%N)" >> %s; sleep 0.1; done'`+"\n", clock)
	if err := os.WriteFile(procfile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(id, host string) []string {
		return []string{
			"REPLICA=" + id,
			"ENTRY_PROCFILE=" + procfile,
			"ENTRY_SINGLETON=clock",
			"ENTRY_STOP_TIMEOUT=2s",
			"DATABASE_URL=" + strings.Replace(pg.URL("postgres", pw, "app"), "127.0.0.1", host, 1),
		}
	}
	replicas := map[string]*nsEntry{}
	// The replica in the network namespace starts first, so that it holds the lock
	// when the other seven start: its network is the one cut at the end.
	cutID := "r0"
	replicas[cutID] = startPID1Via(t, []string{"ip", "netns", "exec", ns.name}, env(cutID, ns.host))
	first, _ := clockWriter(t, clock, time.Time{}, "", 30*time.Second)
	if first != cutID {
		t.Fatalf("first writer %s, want %s", first, cutID)
	}
	for i := 1; i < 8; i++ {
		id := "r" + strconv.Itoa(i)
		replicas[id] = startPID1(t, env(id, "127.0.0.1"))
	}
	for id, r := range replicas {
		if id != cutID {
			r.waitOutput("singleton held by another replica: standby", 30*time.Second)
		}
	}

	// The holder's network goes: it must stop its clock before another starts one.
	cutAt := time.Now()
	ns.cut(t)
	next, nextAt := clockWriter(t, clock, cutAt, cutID, 90*time.Second)
	lines := readClock(t, clock)
	var lastCut time.Time
	for _, l := range lines {
		if l.id == cutID {
			lastCut = l.at
		}
	}
	t.Logf("network cut: %s's last line %s after the cut, %s's first %s after the cut (gap %s)",
		cutID, lastCut.Sub(cutAt).Round(time.Millisecond), next, nextAt.Sub(cutAt).Round(time.Millisecond), nextAt.Sub(lastCut).Round(time.Millisecond))
	if !lastCut.Before(nextAt) {
		t.Errorf("the cut-off holder wrote at %s, after %s started at %s", lastCut, next, nextAt)
	}
	replicas[cutID].waitOutput("singleton lock session lost: stopping its processes", 5*time.Second)

	// SIGKILL of the holder's whole namespace: its session ends with it.
	holder := next
	clockLines(t, clock, holder, cutAt, 10)
	killAt := time.Now()
	replicas[holder].cmd.Process.Kill() // --kill-child: the namespace goes with unshare
	syscall.Kill(replicas[holder].pid1, syscall.SIGKILL)
	next, nextAt = clockWriter(t, clock, killAt, holder, 5*time.Second)
	t.Logf("SIGKILL of %s's namespace → %s writes after %s", holder, next, nextAt.Sub(killAt).Round(time.Millisecond))

	// SIGTERM of the new holder hands over as soon as its clock has exited.
	holder = next
	clockLines(t, clock, holder, killAt, 10)
	termAt := time.Now()
	replicas[holder].signal(syscall.SIGTERM)
	next, nextAt = clockWriter(t, clock, termAt, holder, 5*time.Second)
	t.Logf("SIGTERM of %s → %s writes after %s", holder, next, nextAt.Sub(termAt).Round(time.Millisecond))
	if status := replicas[holder].wait(10 * time.Second); status != 0 {
		t.Errorf("%s after SIGTERM: status %d, want 0\n%s", holder, status, replicas[holder].out)
	}
	if out := replicas[holder].out.String(); !strings.Contains(out, "singleton lock released") {
		t.Errorf("%s did not release its lock after its clock exited\n%s", holder, out)
	}
	// A few more lines from the third holder, then the whole file is checked.
	clockLines(t, clock, next, termAt, 10)
	segs := clockSegments(t, readClock(t, clock))
	var order []string
	for _, s := range segs {
		order = append(order, fmt.Sprintf("%s×%d", s[0].id, len(s)))
	}
	t.Logf("writers in order: %s", strings.Join(order, " "))
	if len(segs) != 4 {
		t.Errorf("%d writers in turn, want 4 (first, after the cut, after SIGKILL, after SIGTERM)", len(segs))
	}
}

// TestFleetWaitCommandTimeout: a wait command that never succeeds is retried with backoff
// until ENTRY_WAIT_TIMEOUT, then entry exits 69 and starts nothing; its output is wrapped
// as the release steps' is.
func TestFleetWaitCommandTimeout(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	r := runEntry(t, 30*time.Second, []string{
		"ENTRY_WAIT_COMMAND=sh -c 'echo not yet; exit 3'",
		"ENTRY_WAIT_TIMEOUT=4s",
		"ENTRY_LOG_FORMAT=json",
	}, "--", "touch", marker)
	if r.status != 69 {
		t.Fatalf("status %d, want 69\n%s", r.status, r.output())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran although the wait command never succeeded")
	}
	out := r.output()
	// 1 s, then 2 s: the third attempt comes after the deadline.
	if n := strings.Count(out, `"line":"not yet"`); n < 2 || n > 3 {
		t.Errorf("%d attempts in 4 s, want 2 or 3 (backoff 1 s, 2 s)\n%s", n, out)
	}
	if !strings.Contains(out, `"process":"wait"`) || !strings.Contains(out, `"msg":"wait command did not succeed in time: no process is started"`) {
		t.Errorf("output:\n%s", out)
	}
}
