package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
)

func TestWaitTimeoutOnClosedPort(t *testing.T) {
	port := throwaway.FreePort(t)
	r := runEntry(t, 20*time.Second, []string{"ENTRY_WAIT=tcp://127.0.0.1:" + strconv.Itoa(port), "ENTRY_WAIT_TIMEOUT=2s"}, "wait")
	if r.status != 69 {
		t.Fatalf("status %d, want 69\n%s", r.status, r.output())
	}
	// The acceptance is 2 s ± 0.5 s; assert it loosely here (a loaded CI machine is not a
	// benchmark) and log the figure.
	t.Logf("exit after %s", r.elapsed)
	if r.elapsed < 2*time.Second || r.elapsed > 5*time.Second {
		t.Errorf("exit after %s, want about 2s", r.elapsed)
	}
	if !strings.Contains(r.stderr, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("the log does not name the dependency:\n%s", r.stderr)
	}
}

func TestWaitSIGTERMAsPID1(t *testing.T) {
	port := throwaway.FreePort(t)
	n := startPID1(t, []string{"ENTRY_WAIT=tcp://127.0.0.1:" + strconv.Itoa(port)}, "wait")
	n.waitOutput("not ready", 10*time.Second)
	start := time.Now()
	n.signal(syscall.SIGTERM)
	status := n.wait(5 * time.Second)
	t.Logf("exit %d after %s", status, time.Since(start))
	if status != 143 {
		t.Fatalf("status %d, want 143\n%s", status, n.out)
	}
}

func TestWaitLateRedisAndPostgres(t *testing.T) {
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{})
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "late-pw", Databases: []string{"app"}})
	n := startPID1(t, []string{
		"REDIS_URL=" + rd.URL("", "", 0),
		"DATABASE_URL=" + pg.URL("postgres", "late-pw", "app"),
		"ENTRY_WAIT_TIMEOUT=60s",
	}, "wait")
	n.waitOutput("not ready", 10*time.Second)
	rd.Start()
	pg.Start()
	if status := n.wait(30 * time.Second); status != 0 {
		t.Fatalf("status %d, want 0\n%s", status, n.out)
	}
	if out := n.out.String(); strings.Contains(out, "late-pw") {
		t.Errorf("password in the output:\n%s", out)
	}
}

func TestWaitWrongPostgresPassword(t *testing.T) {
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{Password: "right-pw", Databases: []string{"app"}})
	pg.Start()
	const wrong = "Wr0ng-Pa55word"
	r := runEntry(t, 20*time.Second, []string{"DATABASE_URL=" + pg.URL("postgres", wrong, "app")}, "wait")
	if r.status != 69 {
		t.Fatalf("status %d, want 69\n%s", r.status, r.output())
	}
	t.Logf("exit after %s", r.elapsed)
	if r.elapsed > 5*time.Second {
		t.Errorf("took %s, want well under 5s", r.elapsed)
	}
	if strings.Contains(r.output(), wrong) {
		t.Errorf("password in the output:\n%s", r.output())
	}
	if !strings.Contains(r.stderr, "28P01") || !strings.Contains(strings.ToLower(r.stderr), "password") {
		t.Errorf("no authentication hint:\n%s", r.stderr)
	}

	r = runEntry(t, 20*time.Second, []string{"DATABASE_URL=" + pg.URL("postgres", "right-pw", "nosuchdb")}, "wait")
	if r.status != 69 || !strings.Contains(r.stderr, "3D000") {
		t.Errorf("missing database: status %d, want 69 and 3D000\n%s", r.status, r.output())
	}
}

func TestCheck(t *testing.T) {
	env := []string{
		"DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres",
		"CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672//",
		"REDIS_URL=redis://127.0.0.1:6379/0",
	}
	r := runEntry(t, 30*time.Second, env, "check")
	if r.status != 0 {
		t.Fatalf("status %d, want 0\n%s", r.status, r.output())
	}
	for _, s := range []string{"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "up"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("no %q in the table:\n%s", s, r.stdout)
		}
	}
	env = append(env, "ENTRY_WAIT=tcp://127.0.0.1:"+strconv.Itoa(throwaway.FreePort(t)))
	if r = runEntry(t, 30*time.Second, env, "check"); r.status != 69 || !strings.Contains(r.stdout, "down") {
		t.Errorf("with a closed port: status %d, want 69 and a down row\n%s", r.status, r.output())
	}
}

func TestConfigShowsDiscoveredRedacted(t *testing.T) {
	r := runEntry(t, 10*time.Second, []string{
		"DATABASE_URL=pgsql://app:Db-s3cret@db:5432/app?conn_max_age=600",
		"CELERY_BROKER_URL=pyamqp://guest:Mq-s3cret@rabbit//",
	}, "config")
	if r.status != 0 {
		t.Fatalf("status %d\n%s", r.status, r.output())
	}
	for _, want := range []string{"postgres app@db:5432/app", "from DATABASE_URL", "amqp guest@rabbit:5672/", "from CELERY_BROKER_URL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.output(), "s3cret") {
		t.Errorf("a password is printed:\n%s", r.output())
	}
}

// TestBadEnvironment: every invalid input stops entry with 78 before anything starts (no
// release step, no process), and the message names the variable in one short line. Every
// ENTRY_* variable `entry help` lists has a case.
func TestBadEnvironment(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	started, released := filepath.Join(dir, "started"), filepath.Join(dir, "released")
	procfile := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(procfile, []byte("web: touch "+started+"\nrelease: touch "+released+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyProcfile := filepath.Join(dir, "Procfile.release-only")
	if err := os.WriteFile(emptyProcfile, []byte("release: touch "+released+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("s3cret", 12000) // 72 KB: over every limit, and never to be echoed
	tests := []struct {
		env  string
		want string
	}{
		{"ENTRY_WAIT=mongodb://db:27017", "ENTRY_WAIT"},
		{"ENTRY_WAIT=postgres://u:p@db:70000/app", "ENTRY_WAIT"},
		{"ENTRY_WAIT=redis://:6379", "ENTRY_WAIT"},
		{"ENTRY_WAIT=db:5432", "ENTRY_WAIT"},
		{"ENTRY_WAIT=tcp://db", "ENTRY_WAIT"},
		{"ENTRY_WAIT=redis://:" + long + "@r/0", "ENTRY_WAIT"},
		{"ENTRY_WAIT=tcp://" + strings.Repeat("h", 300) + ":1", "ENTRY_WAIT"},
		{"ENTRY_WAIT=tcp://127.0.0.1:1\nENTRY_WAIT_FILE=" + secret, "ENTRY_WAIT_FILE"},
		{"DATABASE_URL=postgres://db/app\nDATABASE_URL_FILE=" + secret, "DATABASE_URL_FILE"},
		{"DATABASE_URL=postgres://u:" + long[:5000] + "@db/app", "DATABASE_URL"},
		{"REDIS_URL_FILE=" + filepath.Join(dir, "nope"), "REDIS_URL_FILE"},
		{"ENTRY_WAIT_FILE=" + filepath.Join(dir, "nope"), "ENTRY_WAIT_FILE"},
		{"ENTRY_WAIT_TIMEOUT=soon", "ENTRY_WAIT_TIMEOUT"},
		{"ENTRY_STOP_TIMEOUT=-1s", "ENTRY_STOP_TIMEOUT"},
		{"ENTRY_ATTEMPT_TIMEOUT=0s", "ENTRY_ATTEMPT_TIMEOUT"},
		{"ENTRY_BACKOFF_INITIAL=-1ms", "ENTRY_BACKOFF_INITIAL"},
		{"ENTRY_PROGRESS_INTERVAL=often", "ENTRY_PROGRESS_INTERVAL"},
		{"ENTRY_DISCOVER=maybe", "ENTRY_DISCOVER"},
		{"ENTRY_SKIP_WAIT=maybe", "ENTRY_SKIP_WAIT"},
		{"ENTRY_HTTP_INSECURE=maybe", "ENTRY_HTTP_INSECURE"},
		{"ENTRY_SKIP_RELEASE=maybe", "ENTRY_SKIP_RELEASE"},
		{"ENTRY_RELEASE=" + long, "ENTRY_RELEASE"},
		{"ENTRY_RESTART=sometimes", "ENTRY_RESTART"},
		{"ENTRY_RESTART_WINDOW=0s", "ENTRY_RESTART_WINDOW"},
		{"ENTRY_STOP_SIGNAL=SIGFOO", "ENTRY_STOP_SIGNAL"},
		{"ENTRY_STOP_SIGNAL=KILL", "ENTRY_STOP_SIGNAL"},
		{"ENTRY_STOP_SIGNAL_WEB=SIGFOO", "ENTRY_STOP_SIGNAL_WEB"},
		{"ENTRY_STOP_SIGNAL_WORKER=STOP", "ENTRY_STOP_SIGNAL_WORKER"},
		{"ENTRY_STOP_TIMEOUT_WEB=soon", "ENTRY_STOP_TIMEOUT_WEB"},
		{"ENTRY_STOP_TIMEOUT_WORKER=-1s", "ENTRY_STOP_TIMEOUT_WORKER"},
		{"ENTRY_SHUTDOWN_DELAY=-1s", "ENTRY_SHUTDOWN_DELAY"},
		{"ENTRY_STOP_BUDGET=30", "ENTRY_STOP_BUDGET"},
		{"ENTRY_LOG_FORMAT=xml", "ENTRY_LOG_FORMAT"},
		{"ENTRY_LOG_LEVEL=loud", "ENTRY_LOG_LEVEL"},
		{"ENTRY_LOG_LEVEL=loud\nentry | error: forged", "ENTRY_LOG_LEVEL"},
		{"ENTRY_HEALTH_ADDR=8081", "ENTRY_HEALTH_ADDR"},
		{"ENTRY_HEALTH_ADDR=:70000", "ENTRY_HEALTH_ADDR"},
		{"ENTRY_FORMATION=worker=two", "ENTRY_FORMATION"},
		{"ENTRY_FORMATION=worker=1", "ENTRY_FORMATION"},
		{"ENTRY_PROCESSES=web,w@rker", "ENTRY_PROCESSES"},
		{"ENTRY_PROCESSES=worker", "ENTRY_PROCESSES"},
		{"ENTRY_RELEASE_LOCK=perhaps", "ENTRY_RELEASE_LOCK"},
		{"ENTRY_RELEASE_LOCK=true", "ENTRY_RELEASE_LOCK"},
		{"ENTRY_RELEASE_LOCK_KEY=abc", "ENTRY_RELEASE_LOCK_KEY"},
		{"ENTRY_WAIT_COMMAND=" + long, "ENTRY_WAIT_COMMAND"},
		{"ENTRY_SINGLETON=web", "ENTRY_SINGLETON"},
		{"DATABASE_URL=postgres://db/app\nENTRY_SINGLETON=clock", "ENTRY_SINGLETON"},
		{"ENTRY_RELEASE_LOCK_TIMEOUT=-1m", "ENTRY_RELEASE_LOCK_TIMEOUT"},
		{"ENTRY_BACKOFF_INITIAL=5s\nENTRY_BACKOFF_MAX=1s", "ENTRY_BACKOFF_MAX"},
		{"POSTGRES_HOST=db\nPOSTGRES_PORT=pg", "POSTGRES_PORT"},
		{"DATABASE_URL=postgres://u:p@db:port/app", "DATABASE_URL"},
		{"CELERY_BROKER_URL=amqp//guest@rabbit", "CELERY_BROKER_URL"},
		{"ENTRY_RESTART_LIMIT=0", "ENTRY_RESTART_LIMIT"},
		{"ENTRY_HTTP_CA_FILE=" + filepath.Join(dir, "ca.pem"), "ENTRY_HTTP_CA_FILE"},
		{"ENTRY_HTTP_CA_FILE=" + secret, "ENTRY_HTTP_CA_FILE"},
		{"ENTRY_PROCFILE=" + filepath.Join(dir, "Procfile.missing"), "ENTRY_PROCFILE"},
		{"ENTRY_PROCFILE=" + emptyProcfile, "ENTRY_PROCFILE"},
		{"ENTRY_USER=no-such-user-here", "ENTRY_USER"},
		{"ENTRY_CHOWN=" + dir, "ENTRY_CHOWN"},
		{"ENTRY_USER=nobody\nENTRY_CHOWN=" + filepath.Join(dir, "missing"), "ENTRY_CHOWN"},
		{"ENTRY_SENTRY=maybe", "ENTRY_SENTRY"},
		{"ENTRY_SENTRY_DSN=ftp://s3cret@sentry.invalid/1", "ENTRY_SENTRY_DSN"},
		{"SENTRY_DSN=https://s3cret@/1", "SENTRY_DSN"},
		{"SENTRY_DSN=https://s3cret@127.0.0.1/1\nENTRY_SENTRY_TIMEOUT=-1s", "ENTRY_SENTRY_TIMEOUT"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.want] = true
		env := append([]string{"ENTRY_PROCFILE=" + procfile}, strings.Split(tt.env, "\n")...)
		shown := tt.env
		if len(shown) > 80 {
			shown = shown[:80] + "..."
		}
		// The Procfile mode: a release step and a process that would each leave a file.
		r := runEntry(t, 10*time.Second, env)
		if r.status != 78 {
			t.Errorf("%s: status %d, want 78\n%s", shown, r.status, r.output())
			continue
		}
		if !strings.Contains(r.stderr, tt.want+":") {
			t.Errorf("%s: the message does not name %s:\n%s", shown, tt.want, r.stderr)
		}
		if strings.Contains(r.output(), "s3cret") || strings.Contains(r.output(), "hhhhhhhhhh") {
			t.Errorf("%s: a secret or an oversized value is printed:\n%.500s", shown, r.output())
		}
		for _, line := range strings.Split(r.stderr, "\n") {
			if len(line) > 400 || strings.HasPrefix(line, "entry | error: forged") {
				t.Errorf("%s: a message over 400 bytes, or not one line: %.500q", shown, line)
			}
		}
		for _, p := range []string{started, released} {
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("%s: %s exists: something ran despite the bad environment", shown, p)
			}
		}
	}
	// Every variable entry help lists has a case above.
	help := runEntry(t, 10*time.Second, nil, "help")
	for _, line := range strings.Split(help.stdout, "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, "ENTRY_") && !covered[strings.Replace(name, "<TYPE>", "WEB", 1)] {
			t.Errorf("no bad-value case for %s", name)
		}
	}
}

// TestBadEnvironmentAllAtOnce: every invalid variable is reported in one run.
func TestBadEnvironmentAllAtOnce(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	r := runEntry(t, 10*time.Second, []string{"ENTRY_WAIT_TIMEOUT=soon", "ENTRY_RESTART=sometimes",
		"ENTRY_STOP_SIGNAL_WORKER=SIGFOO", "ENTRY_WAIT=mongodb://db", "ENTRY_RELEASE=touch " + marker}, "--", "touch", marker)
	if r.status != 78 {
		t.Fatalf("status %d, want 78\n%s", r.status, r.output())
	}
	for _, v := range []string{"ENTRY_WAIT_TIMEOUT:", "ENTRY_RESTART:", "ENTRY_STOP_SIGNAL_WORKER:", "ENTRY_WAIT:"} {
		if !strings.Contains(r.stderr, v) {
			t.Errorf("%s is not reported:\n%s", v, r.stderr)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("something ran")
	}
}

// TestWaitNothingToWaitFor: a misspelled DATABASE_URI is not a dependency, and entry says it
// has nothing to wait for.
func TestWaitNothingToWaitFor(t *testing.T) {
	r := runEntry(t, 10*time.Second, []string{"DATABASE_URI=postgres://postgres@127.0.0.1:5432/postgres"}, "wait")
	if r.status != 0 || !strings.Contains(r.output(), "no dependency to wait for") {
		t.Errorf("status %d, want 0 and a line saying there is nothing to wait for\n%s", r.status, r.output())
	}
}

// TestWaitRefusedForGood: a wrong vhost, a wrong password, a Redis URL without the password
// all end the wait at once with 69 and a hint, and no password is printed.
func TestWaitRefusedForGood(t *testing.T) {
	rd := throwaway.NewRedis(t, throwaway.RedisOptions{RequirePass: "Rd-s3cret"})
	rd.StartAndWait()
	tests := []struct {
		name, env, want string
		limit           time.Duration
	}{
		{"amqp vhost", "CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/no-such-vhost", "530", 5 * time.Second},
		// RabbitMQ answers a refused login by closing the socket 3 s later.
		{"amqp password", "CELERY_BROKER_URL=amqp://guest:Mq-s3cret@127.0.0.1:5672//", "password", 10 * time.Second},
		{"redis without password", "REDIS_URL=" + rd.URL("", "", 0), "NOAUTH", 5 * time.Second},
		{"redis wrong password", "REDIS_URL=" + rd.URL("", "Rd-wr0ng", 0), "WRONGPASS", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runEntry(t, 30*time.Second, []string{tt.env}, "wait")
			if r.status != 69 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "hint") {
				t.Fatalf("status %d, want 69 and %q with a hint\n%s", r.status, tt.want, r.output())
			}
			t.Logf("exit after %s", r.elapsed)
			if r.elapsed > tt.limit {
				t.Errorf("took %s, want under %s", r.elapsed, tt.limit)
			}
			if strings.Contains(r.output(), "s3cret") || strings.Contains(r.output(), "wr0ng") {
				t.Errorf("a password is printed:\n%s", r.output())
			}
		})
	}
}
