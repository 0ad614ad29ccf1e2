package integration

// The fault-injection suite of issue 10: each fault a hostile user or a bad
// day can bring, run against the built binary (as PID 1 of a fresh PID
// namespace unless the case needs to see what outlives entry), and a count at
// the end: faults tried, survived, data lost.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5/pgconn"
)

// faultTally counts the cases of TestFaults.
type faultTally struct {
	mu                    sync.Mutex
	tried, survived, lost int
	failed, lostCases     []string
}

// fault runs one case as a subtest. A case calls lost when data went missing
// (bytes, lines), besides failing.
func (ft *faultTally) fault(t *testing.T, name string, f func(t *testing.T, lost func(what string))) {
	t.Run(name, func(t *testing.T) {
		lostHere := false
		defer func() {
			ft.mu.Lock()
			defer ft.mu.Unlock()
			ft.tried++
			if t.Failed() {
				ft.failed = append(ft.failed, name)
			} else {
				ft.survived++
			}
			if lostHere {
				ft.lost++
				ft.lostCases = append(ft.lostCases, name)
			}
		}()
		f(t, func(what string) {
			lostHere = true
			t.Errorf("data lost: %s", what)
		})
	})
}

func TestFaults(t *testing.T) {
	ft := &faultTally{}
	defer func() {
		summary := fmt.Sprintf("faults tried %d, survived %d, data lost %d", ft.tried, ft.survived, ft.lost)
		if len(ft.failed) > 0 {
			summary += "; not survived: " + strings.Join(ft.failed, ", ")
		}
		if len(ft.lostCases) > 0 {
			summary += "; data lost in: " + strings.Join(ft.lostCases, ", ")
		}
		t.Log(summary)
		fmt.Println(summary)
	}()

	ft.fault(t, "1 secrets inside commands", faultSecretsInCommands)
	ft.fault(t, "2 masking by substring", faultMaskingBySubstring)
	ft.fault(t, "3 descendants survive a restart", faultOrphansAcrossRestart)
	ft.fault(t, "4a Postgres restarts before the release lock", faultOutageBeforeLock)
	ft.fault(t, "4b Postgres lost while waiting for the lock", faultOutageWhileWaitingForLock)
	ft.fault(t, "5 Ctrl-C in a terminal, Procfile with release", faultCtrlCAfterRelease)
	ft.fault(t, "6 fuzz by run count", faultFuzzByCount)
	ft.fault(t, "7 signal 34 and SIGPROF under another init", faultSignalsUnderInit)
	ft.fault(t, "8a rediss against plaintext Redis", faultRedissPlaintext)
	ft.fault(t, "8b Postgres dial error once, one line", faultDialErrorOnce)
	ft.fault(t, "8c control characters from a server", faultServerControlChars)
	ft.fault(t, "8d release step failure without err=<nil>", faultNoNilErr)
	ft.fault(t, "8e JSON mode wraps release output", faultJSONReleaseOutput)
	ft.fault(t, "lock lost mid-step is 75", faultLockLostMidStep)
	ft.fault(t, "2,000 grandchildren cleaned up", faultGrandchildren)
	ft.fault(t, "100 MB without newline delivered whole", faultHugeLine)
	ft.fault(t, "invalid UTF-8 still valid JSON", faultInvalidUTF8)
	ft.fault(t, "closed stdout orphans nothing", faultClosedStdout)
	ft.fault(t, "secret scan of every output channel", faultSecretScan)
}

// ---- helpers

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeProcfile writes lines to a Procfile in a fresh directory and returns its path.
func writeProcfile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Procfile")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// noSecret fails when text shows secret, raw or as a URL quotes it.
func noSecret(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range []string{s, url.PathEscape(s), url.QueryEscape(s), url.UserPassword("u", s).String()[2:]} {
			if strings.Contains(text, form) {
				t.Errorf("%s shows the secret %q (as %q):\n%s", where, s, form, text)
			}
		}
	}
}

// markerProcs counts the processes whose command line holds marker.
func markerProcs(marker string) int { return len(markerPids(marker)) }

// killMarker kills what a failed case left behind.
func killMarker(t *testing.T, marker string) {
	t.Cleanup(func() {
		for _, pid := range markerPids(marker) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func markerPids(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), marker) {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}

// startSubreaper runs entry as a plain child of the test (a child subreaper,
// not PID 1), so that what it leaves behind stays visible after it exits.
func startSubreaper(t *testing.T, env []string, stdout io.Writer, args ...string) (*exec.Cmd, *proctest.Buffer, chan struct{}) {
	t.Helper()
	cmd := exec.Command(entryBin, args...)
	cmd.Env = cleanEnv(append(env, pid1NoAtExitSleep)...)
	errb := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, errb
	cmd.WaitDelay = 5 * time.Second // leftovers may hold the pipes: that is what is tested
	if stdout == nil {
		cmd.Stdout = errb
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when entry has exited
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd, errb, done
}

func waitDone(t *testing.T, done chan struct{}, d time.Duration, out fmt.Stringer) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("entry still running after %s\n%s", d, out)
	}
}

// ---- 1, 2: secrets

func faultSecretsInCommands(t *testing.T, _ func(string)) {
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_RELEASE=PGPASSWORD=Sekr1tEnv sh -c 'exit 4'"}, entryBin, "--", "true")
	if r.status != 4 {
		t.Errorf("status %d, want the step's 4\n%s", r.status, r.stdout)
	}
	noSecret(t, "the release log", r.stdout, "Sekr1tEnv")

	pf := writeProcfile(t,
		"web: env API_TOKEN=Tok3n-Secret sleep 1",
		`worker: psql "postgres://app:pa ss-Secret@db/app" -c 'select 1'`,
		"admin: manage.py createsuperuser --password Flag-Secret --noinput",
		"db: mysql -uroot -pMy-Secret app",
		"release: PGPASSWORD=Rel-Secret sh -c 'exit 0'",
	)
	c := runEntry(t, 30*time.Second, []string{"ENTRY_PROCFILE=" + pf}, "config")
	if c.status != 0 {
		t.Fatalf("entry config: status %d\n%s", c.status, c.output())
	}
	noSecret(t, "entry config", c.output(), "Sekr1tEnv", "Tok3n-Secret", "pa ss-Secret", "ss-Secret", "Flag-Secret", "My-Secret", "Rel-Secret")
}

func faultMaskingBySubstring(t *testing.T, _ func(string)) {
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "the-Right-pw-1"})
	pg.StartAndWait()
	r := pid1Run(t, 60*time.Second, []string{"DATABASE_URL=postgres://postgres:postgres@" + pg.Addr() + "/postgres"}, entryBin, "--", "true")
	if r.status != 69 {
		t.Errorf("status %d, want 69\n%s", r.status, r.stdout)
	}
	if !strings.Contains(r.stdout, "wrong password") || strings.Contains(r.stdout, "xxxxx") || strings.Contains(r.stdout, "TLS") {
		t.Errorf("want the wrong-password hint, nothing masked, no TLS hint:\n%s", r.stdout)
	}

	closed := throwaway.FreePort(t)
	r = pid1Run(t, 60*time.Second, []string{"DATABASE_URL=postgres://app:127@127.0.0.1:" + strconv.Itoa(closed) + "/app",
		"ENTRY_WAIT_TIMEOUT=1s"}, entryBin, "--", "true")
	if r.status != 69 || strings.Contains(r.stdout, "xxxxx") || !strings.Contains(r.stdout, "127.0.0.1:"+strconv.Itoa(closed)) {
		t.Errorf("status %d; want 69 and the address intact:\n%s", r.status, r.stdout)
	}
}

// ---- 3: a crashed process's descendants

func faultOrphansAcrossRestart(t *testing.T, _ func(string)) {
	port := throwaway.FreePort(t)
	pf := writeProcfile(t, fmt.Sprintf(`web: sh -c "python3 -m http.server %d --bind 127.0.0.1 & wait \$!"`, port))
	n := startPID1(t, []string{"ENTRY_PROCFILE=" + pf, "ENTRY_RESTART=always"})
	get := func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
	djangoPoll(t, 20*time.Second, "web serving", get)
	var sh int
	for _, pid := range proctest.Descendants(n.pid1) {
		if comm(pid) == "sh" {
			sh = pid
		}
	}
	if sh == 0 {
		t.Fatalf("no sh under entry\n%s", n.out)
	}
	_ = syscall.Kill(sh, syscall.SIGKILL)
	n.waitOutput("process restarted", 20*time.Second)
	// Survived when the restarted web serves from its own python (not an
	// orphan re-parented to entry) and no second python is alive.
	djangoPoll(t, 10*time.Second, "one python, child of the new sh", func() bool {
		var pys []int
		for _, pid := range proctest.Descendants(n.pid1) {
			if comm(pid) == "python3" {
				pys = append(pys, pid)
			}
		}
		return len(pys) == 1 && ppid(pys[0]) != n.pid1 && get()
	})
	if strings.Contains(n.out.String(), "Address already in use") {
		t.Errorf("orphan kept across the restart\n%s", n.out)
	}
	n.signal(syscall.SIGTERM)
	n.wait(20 * time.Second)
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func ppid(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			p, _ := strconv.Atoi(f[1])
			return p
		}
	}
	return 0
}

// ---- 4: outages after "ready"

func faultOutageBeforeLock(t *testing.T, _ func(string)) {
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{})
	pg.StartAndWait()
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{})
	n := startPID1(t, []string{"DATABASE_URL=" + pg.SuperuserURL(), "REDIS_URL=redis://" + rd.Addr() + "/0",
		"ENTRY_RELEASE=true", "ENTRY_WAIT_TIMEOUT=60s"}, "--", "true")
	n.waitOutput("dependency ready", 30*time.Second) // Postgres; Redis is still down
	pg.Stop()
	rd.StartAndWait()
	n.waitOutput("release lock: cannot connect yet", 30*time.Second)
	pg.Start()
	if status := n.wait(60 * time.Second); status != 0 {
		t.Errorf("status %d, want 0: the lock's connection is retried\n%s", status, n.out)
	}
}

func faultOutageWhileWaitingForLock(t *testing.T, _ func(string)) {
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{})
	pg.StartAndWait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	holder, err := pgconn.Connect(ctx, pg.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(4242)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	n := startPID1(t, []string{"DATABASE_URL=" + pg.SuperuserURL(), "ENTRY_RELEASE=true",
		"ENTRY_RELEASE_LOCK_KEY=4242", "ENTRY_WAIT_TIMEOUT=60s"}, "--", "true")
	n.waitOutput("release lock busy", 30*time.Second)
	pg.Stop() // the holder's session goes with it
	pg.Start()
	status := n.wait(60 * time.Second)
	if status != 0 && status != 75 {
		t.Errorf("status %d, want 0 (retried) or 75 (lost)\n%s", status, n.out)
	}
}

// ---- 5: Ctrl-C through a real pty

func faultCtrlCAfterRelease(t *testing.T, _ func(string)) {
	pf := writeProcfile(t, "web: sleep 300", "release: true")
	term := pid1StartTerminal(t, []string{"ENTRY_PROCFILE=" + pf}, "script", "-qec",
		"unshare --pid --fork --mount-proc --kill-child "+entryBin, "/dev/null")
	term.expect(`process started`, 30*time.Second)
	term.write("\x03") // as a person types Ctrl-C
	status := term.wait(15 * time.Second)
	t.Logf("status after Ctrl-C: %d", status)
}

// ---- 6: the test command's fuzz loop

func faultFuzzByCount(t *testing.T, _ func(string)) {
	b, err := os.ReadFile("../test.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if regexp.MustCompile(`-fuzztime\s+"?\d+(ms|s|m|h)\b`).MatchString(s) || !regexp.MustCompile(`-fuzztime\s+"?[^"\s]*x"?`).MatchString(s) {
		t.Errorf("test.sh fuzzes by duration, not by run count")
	}
	if !strings.Contains(s, `echo "$out"`) {
		t.Errorf("a failing fuzz run does not print its output")
	}
}

// ---- 7: signals when entry is not PID 1

func faultSignalsUnderInit(t *testing.T, _ func(string)) {
	script := `trap 'echo got-34' 34; trap 'echo got-PROF' PROF; echo child-ready; while :; do sleep 0.05; done`
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "tini", "-s", "--", entryBin, "--", "bash", "-c", script)
	cmd.Env = cleanEnv(pid1NoAtExitSleep)
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-done
	}()
	out.WaitFor(t, "child-ready", 20*time.Second)
	var entry int
	for _, pid := range proctest.Descendants(cmd.Process.Pid) {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); exe == entryBin {
			entry = pid
		}
	}
	if entry == 0 {
		t.Fatalf("entry not found under tini\n%s", out)
	}
	_ = syscall.Kill(entry, syscall.Signal(34))
	out.WaitFor(t, "got-34", 5*time.Second)
	_ = syscall.Kill(entry, syscall.SIGPROF)
	out.WaitFor(t, "got-PROF", 5*time.Second)
	if _, err := os.Stat("/proc/" + strconv.Itoa(entry)); err != nil {
		t.Errorf("entry died of a forwarded signal\n%s", out)
	}
}

// ---- 8: smaller ones

func faultRedissPlaintext(t *testing.T, _ func(string)) {
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{})
	rd.StartAndWait()
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_WAIT=rediss://" + rd.Addr() + "/0", "ENTRY_WAIT_TIMEOUT=40s"}, entryBin, "--", "true")
	if r.status != 69 || !strings.Contains(r.stdout, "does not speak TLS") || strings.Contains(r.stdout, "timed out") {
		t.Errorf("status %d; want 69 at once with a TLS hint, not a timeout\n%s", r.status, r.stdout)
	}
}

func faultDialErrorOnce(t *testing.T, _ func(string)) {
	closed := throwaway.FreePort(t)
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_WAIT=postgres://app:pw@127.0.0.1:" + strconv.Itoa(closed) + "/app?sslmode=prefer",
		"ENTRY_WAIT_TIMEOUT=1s"}, entryBin, "--", "true")
	if r.status != 69 {
		t.Errorf("status %d, want 69", r.status)
	}
	errText := regexp.MustCompile(`error="[^"]*"`)
	for _, line := range strings.Split(r.stdout, "\n") {
		if e := errText.FindString(line); strings.Contains(line, `\n\t`) || strings.Count(e, "connection refused") > 1 {
			t.Errorf("dial error repeated or with escapes: %s", line)
		}
	}
}

func faultServerControlChars(t *testing.T, _ func(string)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 1024)
				_, _ = conn.Read(buf)
				msg := "SFATAL\x00C28000\x00Mbad\r\nforged line\x1b[2J nul\x00\x00"
				n := len(msg) + 4
				_, _ = conn.Write(append([]byte{'E', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...))
			}()
		}
	}()
	for _, format := range []string{"text", "json"} {
		r := pid1Run(t, 60*time.Second, []string{"ENTRY_WAIT=postgres://app:pw@" + ln.Addr().String() + "/app?sslmode=disable",
			"ENTRY_WAIT_TIMEOUT=2s", "ENTRY_LOG_FORMAT=" + format}, entryBin, "--", "true")
		if r.status != 69 {
			t.Errorf("%s: status %d, want 69", format, r.status)
		}
		if strings.ContainsAny(r.stdout, "\x00\x1b\r") || regexp.MustCompile(`(?m)^forged`).MatchString(r.stdout) {
			t.Errorf("%s: a control character from the server reached the log:\n%q", format, r.stdout)
		}
	}
}

func faultNoNilErr(t *testing.T, _ func(string)) {
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_RELEASE=exit 3"}, entryBin, "--", "true")
	if r.status != 3 || strings.Contains(r.stdout, "<nil>") {
		t.Errorf("status %d, want 3 and no <nil>\n%s", r.status, r.stdout)
	}
}

func faultJSONReleaseOutput(t *testing.T, _ func(string)) {
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_LOG_FORMAT=json", "ENTRY_RELEASE=echo plain-release-output"}, entryBin, "--", "true")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %q", line)
		}
	}
}

// ---- faults that already passed

func faultLockLostMidStep(t *testing.T, _ func(string)) {
	db := throwaway.LocalDatabase(t, "entry_fault")
	n := startPID1(t, []string{"DATABASE_URL=" + throwaway.LocalPostgresURL(db),
		"ENTRY_RELEASE=sh -c 'echo step-started; exec sleep 60'"}, "--", "true")
	n.waitOutput("\nstep-started", 30*time.Second)
	holder := psql(t, "postgres", "select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = '"+db+"')")
	if holder == "" {
		t.Fatalf("no advisory lock held\n%s", n.out)
	}
	psql(t, "postgres", "select pg_terminate_backend("+holder+")")
	if status := n.wait(30 * time.Second); status != 75 {
		t.Errorf("status %d, want 75\n%s", status, n.out)
	}
}

func faultGrandchildren(t *testing.T, _ func(string)) {
	marker := strconv.Itoa(100000 + rand.IntN(800000))
	killMarker(t, "sleep\x00"+marker)
	pf := writeProcfile(t, "web: sh -c 'for i in $(seq 2000); do sleep "+marker+" & done; echo spawned; wait'")
	cmd, out, done := startSubreaper(t, []string{"ENTRY_PROCFILE=" + pf}, nil)
	out.WaitFor(t, "spawned", 60*time.Second)
	djangoPoll(t, 30*time.Second, "2,000 grandchildren running", func() bool { return markerProcs("sleep\x00"+marker) >= 2000 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitDone(t, done, 60*time.Second, out)
	if n := markerProcs("sleep\x00" + marker); n != 0 {
		t.Errorf("%d grandchildren left after entry exited", n)
	}
}

// byteCounter counts the bytes it is given and how many of them are c.
type byteCounter struct {
	mu     sync.Mutex
	c      byte
	n, all int64
}

func (b *byteCounter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all += int64(len(p))
	for _, x := range p {
		if x == b.c {
			b.n++
		}
	}
	return len(p), nil
}

func faultHugeLine(t *testing.T, lost func(string)) {
	const size = 100_000_000
	pf := writeProcfile(t, fmt.Sprintf(`big: head -c %d /dev/zero | tr '\0' a`, size))
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", entryBin)
	cmd.Env = cleanEnv("ENTRY_PROCFILE="+pf, "ENTRY_RESTART=never", pid1NoAtExitSleep)
	cnt := &byteCounter{c: 'a'}
	cmd.Stdout, cmd.Stderr = cnt, cnt
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("entry did not finish within 3 minutes")
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	// Every 'a' arrives (entry's own lines contain some 'a's too: at least size).
	if cnt.n < size {
		lost(fmt.Sprintf("%d of %d bytes delivered", cnt.n, size))
	}
}

func faultInvalidUTF8(t *testing.T, lost func(string)) {
	pf := writeProcfile(t, `bad: printf 'before \377\376 after\n'`)
	r := pid1Run(t, 60*time.Second, []string{"ENTRY_PROCFILE=" + pf, "ENTRY_LOG_FORMAT=json", "ENTRY_RESTART=never"}, entryBin)
	seen := false
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		line := sc.Text()
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %q", line)
		}
		if strings.Contains(line, "before") && strings.Contains(line, "after") {
			seen = true
		}
	}
	if !seen {
		lost("the line with invalid UTF-8 is missing\n" + r.stdout)
	}
}

func faultClosedStdout(t *testing.T, _ func(string)) {
	marker := strconv.Itoa(100000 + rand.IntN(800000))
	killMarker(t, "sleep\x00"+marker)
	pf := writeProcfile(t, "web: sh -c 'sleep "+marker+" & while :; do echo tick || exit 1; sleep 0.01; done'")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody reads entry's stdout
	cmd, out, done := startSubreaper(t, []string{"ENTRY_PROCFILE=" + pf}, w)
	w.Close()
	out.WaitFor(t, "process started", 30*time.Second)
	djangoPoll(t, 10*time.Second, "the grandchild running", func() bool { return markerProcs("sleep\x00"+marker) == 1 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitDone(t, done, 60*time.Second, out)
	if n := markerProcs("sleep\x00" + marker); n != 0 {
		t.Errorf("%d processes orphaned after entry exited\n%s", n, out)
	}
}

// ---- the acceptance scan: every output channel, every kind of password

func faultSecretScan(t *testing.T, _ func(string)) {
	passwords := []string{"Url-S3cret-1", `p@ss w/rd:%'"$x`, "Ünï cødé-Pw", "-dash=Pw;&|"}
	for i, pw := range passwords {
		t.Run(strconv.Itoa(i), func(t *testing.T) { secretScan(t, pw) })
	}
}

func secretScan(t *testing.T, pw string) {
	dbURL := "postgres://" + url.UserPassword("postgres", pw).String() + "@127.0.0.1:5432/postgres?sslmode=disable"
	pf := writeProcfile(t,
		"web: env API_TOKEN="+shq(pw)+" sleep 300",
		"release: PGPASSWORD="+shq(pw)+" sh -c 'exit 0' --password "+shq(pw),
	)
	base := []string{"DATABASE_URL=" + dbURL, "ENTRY_PROCFILE=" + pf, "ENTRY_LOG_LEVEL=debug"}

	// entry config and entry check.
	c := runEntry(t, 30*time.Second, base, "config")
	noSecret(t, "entry config", c.output(), pw)
	chk := runEntry(t, 60*time.Second, append(base, "REDIS_URL=redis://:"+url.PathEscape(pw)+"@127.0.0.1:6379/0",
		"CELERY_BROKER_URL=amqp://guest:"+url.PathEscape(pw)+"@127.0.0.1:5672/"), "check")
	noSecret(t, "entry check", chk.output(), pw)

	// A full run, text and JSON, with /status read while it runs.
	for _, format := range []string{"text", "json"} {
		port := throwaway.FreePort(t)
		n := startPID1(t, append(base, "ENTRY_LOG_FORMAT="+format, "ENTRY_HEALTH_ADDR=127.0.0.1:"+strconv.Itoa(port)))
		n.waitOutput("process started", 60*time.Second)
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
		if err != nil {
			t.Fatalf("/status: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		noSecret(t, "/status", string(body), pw)
		n.signal(syscall.SIGTERM)
		n.wait(30 * time.Second)
		noSecret(t, format+" log", n.out.String(), pw)
	}

	// A failing release step, a crashing process, a refused dependency.
	fail := runEntry(t, 60*time.Second, append(base, "ENTRY_RELEASE=PGPASSWORD="+shq(pw)+" sh -c 'exit 4' --password "+shq(pw)), "--", "true")
	noSecret(t, "release failure", fail.output(), pw)
	crashPf := writeProcfile(t, "crash: sh -c 'exit 3' --password "+shq(pw)+" postgres://u:"+url.PathEscape(pw)+"@h/db")
	crash := runEntry(t, 60*time.Second, []string{"ENTRY_PROCFILE=" + crashPf, "ENTRY_RESTART=never", "ENTRY_LOG_LEVEL=debug"})
	noSecret(t, "crash", crash.output(), pw)
	refused := runEntry(t, 60*time.Second, []string{"REDIS_URL=redis://:" + url.PathEscape(pw) + "@127.0.0.1:6379/0",
		"ENTRY_LOG_LEVEL=debug", "ENTRY_LOG_FORMAT=json"}, "wait")
	noSecret(t, "refused dependency", refused.output(), pw)
}
