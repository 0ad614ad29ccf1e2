package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/entry-dev/entry/report/reporttest"
)

// opsOneEvent checks that exactly one event arrived, of kind and about process, that
// every want is in it, and that no secret is.
func opsOneEvent(t *testing.T, srv *reporttest.Server, out, kind, process string, want []string, secrets ...string) reporttest.Event {
	t.Helper()
	evs := srv.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events arrived, want 1:\n%v\nentry's output:\n%s", len(evs), evs, out)
	}
	e := evs[0]
	if got := e.Tag("incident"); got != kind {
		t.Errorf("incident %q, want %q", got, kind)
	}
	if got := e.Tag("process"); got != process {
		t.Errorf("process %q, want %q", got, process)
	}
	text := e.Text()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("no %q in the event: %s", w, text)
		}
	}
	for _, s := range append(secrets, reporttest.Key) {
		if strings.Contains(text, s) {
			t.Errorf("secret %q in the event: %s", s, text)
		}
		if strings.Contains(out, s) {
			t.Errorf("secret %q in entry's output:\n%s", s, out)
		}
	}
	return e
}

func TestSentryFailedReleaseStep(t *testing.T) {
	srv := reporttest.New(t)
	const pw = "Step-Pw-77"
	step := `sh -c 'echo applying migrations; echo "cannot reach postgres://app:` + pw + `@db/app" >&2; exit 3'`
	r := runEntry(t, 30*time.Second, []string{"SENTRY_DSN=" + srv.DSN(), "ENTRY_RELEASE=" + step, "SENTRY_ENVIRONMENT=ci"}, "--", "true")
	if r.status != 3 {
		t.Fatalf("status %d, want 3\n%s", r.status, r.output())
	}
	// The masked step output still reaches entry's own output unchanged: only the report
	// is masked. The password is the step's own text here, so it is not checked there.
	e := opsOneEvent(t, srv, "", "release", "release.1", []string{"applying migrations", "cannot reach postgres://app:xxxxx@db/app", "exit status 3"}, pw)
	if e.Tag("status") != "3" || e.Tag("phase") != "release" || e["environment"] != "ci" {
		t.Errorf("tags: %s", e.Text())
	}
}

func TestSentryWrongPostgresPassword(t *testing.T) {
	srv := reporttest.New(t)
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "right-pw", Databases: []string{"app"}})
	pg.Start()
	const wrong = "Wr0ng-Sentry-Pa55"
	r := runEntry(t, 30*time.Second, []string{"SENTRY_DSN=" + srv.DSN(), "DATABASE_URL=" + pg.URL("postgres", wrong, "app")}, "--", "true")
	if r.status != 69 {
		t.Fatalf("status %d, want 69\n%s", r.status, r.output())
	}
	e := opsOneEvent(t, srv, r.output(), "dependency", "postgres postgres@"+pg.Addr()+"/app", []string{"28P01", "password"}, wrong)
	if e.Tag("refused") != "permanent" || e.Tag("status") != "69" || e.Tag("phase") != "wait" {
		t.Errorf("tags: %s", e.Text())
	}
}

func TestSentryCrashLoop(t *testing.T) {
	srv := reporttest.New(t)
	dir := t.TempDir()
	procfile := filepath.Join(dir, "Procfile")
	os.WriteFile(procfile, []byte("worker: sh -c 'echo worker booting; echo broken settings >&2; exit 4'\n"), 0o644)
	r := runEntry(t, 60*time.Second, []string{"SENTRY_DSN=" + srv.DSN(), "ENTRY_PROCFILE=" + procfile, "ENTRY_RESTART_LIMIT=1"})
	if r.status != 4 {
		t.Fatalf("status %d, want 4\n%s", r.status, r.output())
	}
	e := opsOneEvent(t, srv, r.output(), "crash-loop", "worker.1", []string{"crash-looping", "broken settings", "worker booting"})
	if exits, _ := e.Incident()["exits"].([]any); len(exits) != 2 || exits[1] != "exited with status 4" {
		t.Errorf("exits: %v", e.Incident()["exits"])
	}
}

func TestSentryLockLost(t *testing.T) {
	srv := reporttest.New(t)
	db := throwaway.LocalDatabase(t, "entry_it")
	n := startPID1(t, []string{"SENTRY_DSN=" + srv.DSN(), "DATABASE_URL=" + throwaway.LocalPostgresURL(db),
		"ENTRY_RELEASE=sh -c 'echo step-started; exec sleep 60'"}, "--", "true")
	n.waitOutput("\nstep-started", 20*time.Second)
	holder := psql(t, "postgres", "select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = '"+db+"')")
	if holder == "" {
		t.Fatalf("no advisory lock held\n%s", n.out)
	}
	psql(t, "postgres", "select pg_terminate_backend("+holder+")")
	if status := n.wait(20 * time.Second); status != 75 {
		t.Fatalf("status %d, want 75\n%s", status, n.out)
	}
	opsOneEvent(t, srv, n.out.String(), "lock-lost", "release.1", []string{"release lock lost", "step-started"})
}

func TestSentryOff(t *testing.T) {
	srv := reporttest.New(t)
	r := runEntry(t, 30*time.Second, []string{"SENTRY_DSN=" + srv.DSN(), "ENTRY_SENTRY=false", "ENTRY_RELEASE=sh -c 'exit 3'"}, "--", "true")
	if r.status != 3 {
		t.Fatalf("status %d, want 3\n%s", r.status, r.output())
	}
	// entry flushes its reports before it exits: anything sent has arrived by now.
	if evs := srv.Events(); len(evs) != 0 {
		t.Errorf("ENTRY_SENTRY=false, but %d events arrived", len(evs))
	}
}

// TestSentryDown: a refused connection changes neither the status nor the time; a
// server that never answers costs at most the bound, ENTRY_SENTRY_TIMEOUT.
func TestSentryDown(t *testing.T) {
	env := []string{"ENTRY_RELEASE=sh -c 'exit 3'"}
	base := runEntry(t, 30*time.Second, env, "--", "true")

	refused := reporttest.New(t)
	refused.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() { // accept and never answer
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, c := range []struct{ name, dsn string }{
		{"refused", refused.DSN()},
		{"silent", fmt.Sprintf("http://%s@%s/42", reporttest.Key, silent.Addr())},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runEntry(t, 30*time.Second, append(env, "SENTRY_DSN="+c.dsn, "ENTRY_SENTRY_TIMEOUT=1s"), "--", "true")
			t.Logf("%s: %s (without Sentry: %s)", c.name, r.elapsed, base.elapsed)
			if r.status != base.status {
				t.Errorf("status %d, want %d as without Sentry\n%s", r.status, base.status, r.output())
			}
			if n := strings.Count(r.output(), "cannot report to Sentry"); n != 1 {
				t.Errorf("%d warnings about Sentry, want 1\n%s", n, r.output())
			}
			if strings.Contains(r.output(), reporttest.Key) {
				t.Errorf("the DSN key is in the output\n%s", r.output())
			}
			// The bound plus generous slack for a loaded machine.
			if r.elapsed > base.elapsed+time.Second+2*time.Second {
				t.Errorf("took %s, more than the 1s bound over %s", r.elapsed, base.elapsed)
			}
		})
	}
}

// opsCgroup makes a memory cgroup limited to limit bytes and returns the file a pid is
// written to to move it in; it is removed at the end of the test.
func opsCgroup(t *testing.T, limit int64) string {
	dir, _ := proctest.MemoryCgroup(t, limit)
	return filepath.Join(dir, "cgroup.procs")
}

func TestOOMKilled(t *testing.T) {
	srv := reporttest.New(t)
	procs := opsCgroup(t, 64<<20)
	dir := t.TempDir()
	procfile := filepath.Join(dir, "Procfile")
	os.WriteFile(procfile, []byte("hog: python3 -c 'print(\"allocating\", flush=True); x = bytearray(200 << 20)'\nidle: sleep 60\n"), 0o644)
	addr := throwaway.FreeAddr(t)
	out, stop := startEntryInCgroup(t, procs, "SENTRY_DSN="+srv.DSN(), "ENTRY_PROCFILE="+procfile, "ENTRY_HEALTH_ADDR="+addr, "ENTRY_RESTART_LIMIT=100")

	want := "OOM-killed (memory limit 64 MiB)"
	var reason string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(reason, want) {
		if time.Now().After(deadline) {
			t.Fatalf("/status never said %q (last: %q)\n%s", want, reason, out)
		}
		var st struct {
			Processes []struct {
				Name     string
				LastExit *struct{ Reason string } `json:"last_exit"`
			}
		}
		if resp, err := http.Get("http://" + addr + "/status"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			json.Unmarshal(b, &st)
		}
		for _, p := range st.Processes {
			if p.Name == "hog.1" && p.LastExit != nil {
				reason = p.LastExit.Reason
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if !strings.Contains(out.String(), "killed by SIGKILL: "+want) {
		t.Errorf("the log does not say %q\n%s", want, out)
	}
	evs := srv.Events()
	if len(evs) == 0 {
		t.Fatalf("no event\n%s", out)
	}
	for _, e := range evs {
		if e.Tag("process") != "hog.1" || e.Tag("incident") != "killed" || !strings.Contains(e.Text(), want) || !strings.Contains(e.Text(), "allocating") {
			t.Errorf("event: %s", e.Text())
		}
	}
}

func TestUserAndChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test runs as root")
	}
	parent := t.TempDir()
	// nobody must reach media: TempDir makes both levels 0700.
	os.Chmod(parent, 0o755)
	os.Chmod(filepath.Dir(parent), 0o755)
	dir := filepath.Join(parent, "media")
	os.Mkdir(dir, 0o755)
	script := `id -u; touch ` + dir + `/x; grep ^Uid: /proc/$PPID/status`
	r := runEntry(t, 30*time.Second, []string{"ENTRY_USER=nobody", "ENTRY_CHOWN=" + dir,
		"ENTRY_RELEASE=sh -c 'id -u > " + dir + "/release-uid'"}, "--", "sh", "-c", script)
	if r.status != 0 {
		t.Fatalf("status %d\n%s", r.status, r.output())
	}
	if !strings.HasPrefix(r.stdout, "65534\n") {
		t.Errorf("the command did not run as nobody:\n%s", r.output())
	}
	if !strings.Contains(r.stdout, "Uid:\t65534\t65534\t65534\t65534") {
		t.Errorf("entry itself is not nobody:\n%s", r.output())
	}
	for _, f := range []string{dir, filepath.Join(dir, "x")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%v\n%s", err, r.output())
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
			t.Errorf("%s is owned by %d", f, uid)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "release-uid")); string(b) != "65534\n" {
		t.Errorf("the release step ran as %q", b)
	}

	marker := filepath.Join(t.TempDir(), "ran")
	for _, env := range [][]string{
		{"ENTRY_USER=no-such-user"},
		{"ENTRY_USER=nobody", "ENTRY_CHOWN=" + dir + "/missing"},
		{"ENTRY_CHOWN=" + dir},
	} {
		r := runEntry(t, 30*time.Second, append(env, "ENTRY_RELEASE=touch "+marker), "--", "touch", marker)
		if r.status != 78 {
			t.Errorf("%v: status %d, want 78\n%s", env, r.status, r.output())
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%v: something ran", env)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	addr := throwaway.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	health := func(hostport string) (int, time.Duration) {
		r := runEntry(t, 10*time.Second, []string{"ENTRY_HEALTH_ADDR=" + hostport}, "health")
		t.Logf("entry health (%s): %d in %s: %s", hostport, r.status, r.elapsed, strings.TrimSpace(r.output()))
		return r.status, r.elapsed
	}
	if st, d := health(addr); st != 1 || d > 3*time.Second {
		t.Errorf("nothing listening: status %d after %s, want 1 within 3s", st, d)
	}
	if r := runEntry(t, 10*time.Second, nil, "health"); r.status != 78 {
		t.Errorf("ENTRY_HEALTH_ADDR unset: status %d, want 78", r.status)
	}

	// A silent listener: entry health gives up within its bound.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if st, d := health(silent.Addr().String()); st != 1 || d > 3*time.Second {
		t.Errorf("silent listener: status %d after %s, want 1 within 3s", st, d)
	}

	closed := throwaway.FreePort(t)
	n := startPID1(t, []string{"ENTRY_HEALTH_ADDR=" + addr, "ENTRY_WAIT=tcp://127.0.0.1:" + strconv.Itoa(closed)}, "--", "sleep", "60")
	n.waitOutput("not ready", 10*time.Second)
	if st, _ := health(addr); st != 1 {
		t.Errorf("while waiting for a dependency: status %d, want 1", st)
	}
	n.signal(syscall.SIGTERM)
	n.wait(10 * time.Second)

	n = startPID1(t, []string{"ENTRY_HEALTH_ADDR=:" + port}, "--", "sleep", "60")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := health("0.0.0.0:" + port)
		if st == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry health never 0 while the process runs\n%s", n.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := health("[::]:" + port); st != 0 {
		t.Errorf("[::]:%s: status %d, want 0", port, st)
	}
	n.signal(syscall.SIGTERM)
	n.wait(10 * time.Second)
}

// TestSentryMainKilled: the main process dies of a SIGKILL nobody inside sent; no memory
// cgroup kill was recorded, so the cause is unknown, and said so.
func TestSentryMainKilled(t *testing.T) {
	srv := reporttest.New(t)
	r := runEntry(t, 30*time.Second, []string{"SENTRY_DSN=" + srv.DSN()}, "--", "sh", "-c", "kill -9 $$")
	if r.status != 137 {
		t.Fatalf("status %d, want 137\n%s", r.status, r.output())
	}
	if !strings.Contains(r.stderr, `sh killed by SIGKILL: exiting with status 137 cause="cause unknown: not sent by entry`) {
		t.Errorf("the log does not give the cause\n%s", r.output())
	}
	opsOneEvent(t, srv, r.output(), "killed", "sh", []string{"killed by SIGKILL: cause unknown: not sent by entry"})
}

// TestOOMKilledDescendant: a worker below a process that lives on (as gunicorn's master
// replaces its workers) is OOM-killed; entry sees no exit but the cgroup's count, and says so.
func TestOOMKilledDescendant(t *testing.T) {
	srv := reporttest.New(t)
	procs := opsCgroup(t, 64<<20)
	dir := t.TempDir()
	procfile := filepath.Join(dir, "Procfile")
	os.WriteFile(procfile, []byte("master: sh -c 'python3 -c \"x = bytearray(200 << 20)\"; echo worker lost; sleep 60'\n"), 0o644)
	out, stop := startEntryInCgroup(t, procs, "SENTRY_DSN="+srv.DSN(), "ENTRY_PROCFILE="+procfile)
	const want = "the kernel OOM-killed 1 process(es) below entry's own (memory limit 64 MiB)"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log\n%s", want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	evs := srv.Events()
	if len(evs) != 1 || !strings.Contains(evs[0].Text(), "OOM-killed") || evs[0].Tag("process") != "(descendant)" {
		t.Errorf("events: %v\n%s", evs, out)
	}
}

// startEntryInCgroup starts entry inside the cgroup whose procs file is procs (the shell
// moves itself in, then becomes entry), with env. stop sends it SIGTERM and fails the test
// unless it exits within 20 s; entry is killed at the end of the test in any case.
func startEntryInCgroup(t *testing.T, procs string, env ...string) (out *proctest.Buffer, stop func()) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `echo $$ > "$0" && exec "$@"`, procs, entryBin)
	cmd.Env = cleanEnv(env...)
	out = &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return out, func() {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("entry did not stop\n%s", out)
		}
	}
}
