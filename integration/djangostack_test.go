package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Helpers of the Django end-to-end tests: a copy of the test project, entry run as PID 1
// of a fresh PID namespace, and the local services the tests share.

const (
	djangoLocalRedis = "127.0.0.1:6379"
	djangoLocalAMQP  = "amqp://guest:guest@127.0.0.1:5672/"
)

// djangoApp is a private copy of testdata/djangoapp (beat and Python write next to the
// code) and the environment that runs it.
type djangoApp struct {
	dir   string
	web   string // gunicorn's address
	queue string // the Celery queue, unique to the test
	env   map[string]string
}

func newDjangoApp(t *testing.T) *djangoApp {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(djangoModuleRoot(t), "integration", "testdata", "djangoapp")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &djangoApp{dir: dir, web: throwaway.FreeAddr(t), queue: throwaway.Name("djangoapp")}
	a.env = map[string]string{
		// Debian's python3 with Django, gunicorn and Celery, not a python3 earlier on PATH.
		"PATH":                    "/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME":                    dir,
		"LANG":                    "C.UTF-8",
		"PYTHONUNBUFFERED":        "1",
		"PYTHONDONTWRITEBYTECODE": "1",
		"DJANGOAPP_BIND":          a.web,
		"DJANGOAPP_QUEUE":         a.queue,
		"DJANGOAPP_BEAT_SCHEDULE": filepath.Join(dir, "celerybeat-schedule"),
		"DJANGOAPP_WEB_WORKERS":   "2",
		"ENTRY_LOG_LEVEL":         "debug",
	}
	return a
}

func (a *djangoApp) environ() []string {
	var env []string
	for k, v := range a.env {
		env = append(env, k+"="+v)
	}
	return env
}

// useLocalServices points the app at the shared local services: a fresh database, and a
// queue and Redis key that only this test uses, all dropped at the end.
func (a *djangoApp) useLocalServices(t *testing.T) (dbURL string) {
	t.Helper()
	dbURL = djangoCreateDB(t)
	a.env["DATABASE_URL"] = dbURL
	a.env["REDIS_URL"] = "redis://" + djangoLocalRedis + "/0"
	a.env["CELERY_BROKER_URL"] = djangoLocalAMQP
	// Cleanups run last first: the test's queue goes before Celery's exchanges.
	t.Cleanup(func() { djangoDeleteCeleryExchanges(t) })
	a.queue = throwaway.LocalQueue(t, "djangoapp")
	a.env["DJANGOAPP_QUEUE"] = a.queue
	t.Cleanup(func() { djangoRedisDel(t, "djangoapp:"+a.queue+":hits") })
	return dbURL
}

// djangoCreateDB returns the URL of a fresh database on the local PostgreSQL.
func djangoCreateDB(t *testing.T) string {
	t.Helper()
	return throwaway.LocalPostgresURL(throwaway.LocalDatabase(t, "entry_django"))
}

// djangoDeleteCeleryExchanges deletes Celery's own exchanges from the local RabbitMQ,
// unless another test's workers still use them (the broker then refuses and closes the
// channel, hence one channel each).
func djangoDeleteCeleryExchanges(t *testing.T) {
	conn, err := amqp.Dial(djangoLocalAMQP)
	if err != nil {
		t.Errorf("delete Celery's exchanges: %v", err)
		return
	}
	defer conn.Close()
	for _, x := range []string{"celeryev", "celery.pidbox"} {
		if ch, err := conn.Channel(); err == nil {
			ch.ExchangeDelete(x, true, false)
		}
	}
}

// djangoRedisDel deletes one key with a hand-written RESP command (no Redis client in go.mod).
func djangoRedisDel(t *testing.T, key string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", djangoLocalRedis, 5*time.Second)
	if err != nil {
		t.Errorf("redis del %s: %v", key, err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n", len(key), key)
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Errorf("redis del %s: %v", key, err)
	}
}

// djangoEntry is entry running as PID 1 of its own PID namespace, as in a container.
type djangoEntry struct {
	cmd  *exec.Cmd // unshare, which waits for entry and exits with its status
	out  *proctest.Buffer
	done chan struct{} // closed when unshare has exited
	code int
}

// startDjangoEntry runs `unshare --pid --fork --mount-proc entry args...` in dir. A cleanup
// SIGKILLs entry if the test leaves it running: the kernel then kills the whole
// namespace, so nothing the test started survives it.
func startDjangoEntry(t *testing.T, dir string, env []string, args ...string) *djangoEntry {
	t.Helper()
	bin := entryBin
	p := &djangoEntry{out: &proctest.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", bin}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			if pid, err := p.pid(); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("entry's output:\n%s", p.out)
		}
	})
	return p
}

// pid is entry's PID in the test's namespace: the one child of unshare.
func (p *djangoEntry) pid() (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if kids := proctest.Children(p.cmd.Process.Pid); len(kids) > 0 {
			return kids[0], nil
		}
		select {
		case <-p.done:
			return 0, errors.New("entry has exited")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("unshare %d has no child after 10s", p.cmd.Process.Pid)
		}
	}
}

func (p *djangoEntry) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pid, err := p.pid()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

// wait returns entry's exit status, or fails the test if it is still running after d.
func (p *djangoEntry) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Fatalf("entry still running after %v", d)
		return -1
	}
}

// djangoPoll calls f every 50 ms until it returns true, and fails the test after d.
func djangoPoll(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var djangoHTTP = &http.Client{Timeout: 30 * time.Second}

// djangoGet fetches url and decodes a JSON body into v (if not nil).
func djangoGet(url string, v any) (int, error) {
	resp, err := djangoHTTP.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %v: %q", url, err, b)
		}
	}
	return resp.StatusCode, nil
}

// djangoWaitHTTP waits for a 200 from url; it fails at once if entry exits meanwhile.
func djangoWaitHTTP(t *testing.T, p *djangoEntry, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, err := djangoGet(url, nil)
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("entry exited with %d before %s answered 200", p.code, url)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no 200 after %v (last: %d %v)", url, d, code, err)
		}
	}
}

// djangoQueryRow runs a query for one row on dbURL and scans the row into dest. Not
// reaching the database fails the test; the query's error is the caller's to judge.
func djangoQueryRow(t *testing.T, dbURL, sql string, args []any, dest ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// djangoMark reads the progress a task or a slow request recorded in the database.
func djangoMark(t *testing.T, dbURL, token string) string {
	t.Helper()
	var state string
	err := djangoQueryRow(t, dbURL, "SELECT state FROM shop_mark WHERE token = $1", []any{token}, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func djangoWaitMark(t *testing.T, dbURL, token, state string, d time.Duration) {
	t.Helper()
	djangoPoll(t, d, token+" "+state, func() bool { return djangoMark(t, dbURL, token) == state })
}

// djangoStatusReply is the part of entry's /status the tests read.
type djangoStatusReply struct {
	Phase     string
	Ready     bool
	Processes []struct {
		Name     string
		State    string
		Restarts int
	}
}

func djangoStatus(t *testing.T, addr string) djangoStatusReply {
	t.Helper()
	var st djangoStatusReply
	if code, err := djangoGet("http://"+addr+"/status", &st); err != nil || code != http.StatusOK {
		t.Fatalf("/status: got %d %v, want 200 with JSON", code, err)
	}
	return st
}
