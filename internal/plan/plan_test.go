package plan

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"github.com/entry-dev/entry/supervise"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/readiness"
	"golang.org/x/sys/unix"
)

// newBuilder is a builder over environ with the Spec loaded, for testing one step of Build.
func newBuilder(environ ...string) *builder {
	b := &builder{env: newEnv(environ)}
	b.spec = load(b.env, &b.errs)
	return b
}

func TestBuildDefaults(t *testing.T) {
	p, err := Build(nil, Command)
	if err != nil {
		t.Fatal(err)
	}
	o := p.Wait.Options
	if o.Timeout != 120*time.Second || p.Stop.Timeout != 8*time.Second || p.Restart.Policy != "on-failure" || p.Stop.Signal != syscall.SIGTERM {
		t.Errorf("defaults: got %+v", p)
	}
	if o.Backoff != readiness.DefaultBackoff || o.AttemptTimeout != readiness.DefaultAttemptTimeout || o.ProgressInterval != readiness.DefaultProgressInterval {
		t.Errorf("wait defaults %+v differ from readiness's own", o)
	}
	if p.Release.Lock != nil {
		t.Errorf("release lock on without a Postgres dependency")
	}
	if b := newBuilder(); !b.spec.Discover {
		t.Errorf("ENTRY_DISCOVER is off by default")
	}
}

// TestHelpShowsTheDefaults: every default `entry help` prints is the one the plan gets.
func TestHelpShowsTheDefaults(t *testing.T) {
	var out bytes.Buffer
	Help(&out)
	for _, want := range []string{"ENTRY_SKIP_WAIT  ", "ENTRY_FORMATION  ", "ENTRY_PROCESSES  "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help has no %q", want)
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "ENTRY_") || f[1] == "-" || strings.Contains(f[0], "<") {
			continue
		}
		// A default set explicitly gives the same plan as none.
		name := f[0]
		var def string
		var s Spec
		for _, fl := range fields(&s) {
			if fl.name == name {
				def = fl.def
			}
		}
		if def == "" {
			continue // shown as a rule ("1 each", "all but release")
		}
		if f[1] != def {
			t.Errorf("%s: help shows %q, the loader uses %q", name, f[1], def)
		}
		a, b := newBuilder(), newBuilder(name+"="+def)
		if a.spec != b.spec {
			t.Errorf("%s=%s differs from the default", name, def)
		}
	}
	// The defaults with no value are rules; setting the rule's value gives the same plan.
	dir := t.TempDir()
	pf := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(pf, []byte("web: sleep 1\nworker: sleep 2\nrelease: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Build([]string{"ENTRY_PROCFILE=" + pf}, Procfile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build([]string{"ENTRY_PROCFILE=" + pf, "ENTRY_FORMATION=all=1", "ENTRY_PROCESSES=web,worker"}, Procfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Processes) != 2 || len(b.Processes) != 2 || a.Processes[1].Name != b.Processes[1].Name {
		t.Errorf("defaults %+v, explicit %+v", a.Processes, b.Processes)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"ENTRY_WAIT=mongodb://db:27017", "ENTRY_WAIT"},
		{"ENTRY_WAIT=postgres://u:p@db:70000/app", "ENTRY_WAIT"},
		{"ENTRY_WAIT=redis://:6379", "ENTRY_WAIT"},
		{"CELERY_BROKER_URL=amqp//guest@rabbit", "CELERY_BROKER_URL"},
		{"ENTRY_STOP_SIGNAL_WORKER=SIGFOO", "ENTRY_STOP_SIGNAL_WORKER"},
	} {
		_, err := Build([]string{tt.env}, Command)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want a *plan.Error", tt.env, err)
		}
		if !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("got %q, want it to start with %s", err, tt.want)
		}
	}
}

// TestAllErrorsAtOnce: a user fixes every mistake in one go, not one run at a time.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Build([]string{"ENTRY_WAIT_TIMEOUT=soon", "ENTRY_RESTART=sometimes", "ENTRY_WAIT=mongodb://db",
		"ENTRY_STOP_SIGNAL_WEB=KILL", "ENTRY_LOG_LEVEL=loud", "ENTRY_DISCOVER=maybe"}, Command)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want *plan.Errors", err)
	}
	var got []string
	for _, e := range errs.List {
		got = append(got, e.Var)
	}
	want := "ENTRY_DISCOVER ENTRY_WAIT_TIMEOUT ENTRY_RESTART ENTRY_LOG_LEVEL ENTRY_STOP_SIGNAL_WEB ENTRY_WAIT"
	if strings.Join(got, " ") != want {
		t.Errorf("errors for %q, want %q\n%v", got, want, err)
	}
}

// TestLongValuesNotEchoed: an oversized value is refused by its size, never shown.
func TestLongValuesNotEchoed(t *testing.T) {
	long := strings.Repeat("s3cret", 20000)
	host := strings.Repeat("h", 300)
	for _, tt := range []struct{ env, want string }{
		{"DATABASE_URL=postgres://u:" + long + "@db/app", "DATABASE_URL"},
		{"ENTRY_WAIT=redis://:" + long + "@r/0", "ENTRY_WAIT"},
		{"ENTRY_WAIT=tcp://" + host + ":5432", "ENTRY_WAIT"},
		{"ENTRY_RELEASE_LOCK=" + long, "ENTRY_RELEASE_LOCK"},
		{"POSTGRES_PASSWORD=" + long, "POSTGRES_PASSWORD"},
		{"ENTRY_STOP_SIGNAL_WEB=" + long, "ENTRY_STOP_SIGNAL_WEB"},
	} {
		_, err := Build([]string{tt.env}, Command)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("%.40s...: got %v, want an error naming %s", tt.env, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hhhhhhhhhh") || len(err.Error()) > maxMessage+10 {
			t.Errorf("%.40s...: the value is echoed: %.200q", tt.env, err)
		}
	}
}

func TestMessagesAreOneLine(t *testing.T) {
	_, err := Build([]string{"ENTRY_RESTART=a\nentry | error: forged\x1b[31m"}, Command)
	if err == nil || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("got %q, want one line without control characters", err)
	}
	if got := clean("a\nb\x00c\xffd\u2028"); got != `a\nb\x00c\xffd\u2028` {
		t.Errorf("clean: %q", got)
	}
}

func TestFileEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("s3 cret\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBuilder("POSTGRES_PASSWORD_FILE=" + p)
	v, src := b.fileEnv("POSTGRES_PASSWORD", maxValue)
	if err := b.errs.err(); err != nil || v != "s3 cret" || src != "POSTGRES_PASSWORD_FILE" {
		t.Errorf("fileEnv = %q, %q, %v; want \"s3 cret\", POSTGRES_PASSWORD_FILE, nil", v, src, err)
	}
	// Kubernetes mounts a secret as a symlink to a symlink to the file.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	b = newBuilder("POSTGRES_PASSWORD_FILE=" + link)
	if v, _ := b.fileEnv("POSTGRES_PASSWORD", maxValue); v != "s3 cret" || b.errs.err() != nil {
		t.Errorf("through a symlink: %q, %v", v, b.errs.err())
	}
}

// TestReadFileRefuses: nothing but a regular file under the cap is read, and nothing blocks.
func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{"/dev/zero", "a device"},
		{fifo, "a FIFO"},
		{dir, "a directory"},
		{big, "over the limit"},
		{filepath.Join(dir, "nope"), "no such file"},
	} {
		_, err := readFile(tt.path, maxSecretFile)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("readFile(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBuilder(
		"DATABASE_URL=pgsql://app:pw@db/app?conn_max_age=60",
		"CELERY_BROKER_URL=pyamqp://guest:guest@rabbit//",
		"REDIS_URL=sqlite:///tmp/x",
	)
	b.discover()
	if err := b.errs.err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range b.deps {
		got = append(got, d.source+" "+d.shown)
	}
	want := []string{"DATABASE_URL postgres://app@db:5432/app", "CELERY_BROKER_URL amqp://guest@rabbit:5672//"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("deps: got %q, want %q", got, want)
	}
	if len(b.notes) != 1 || !strings.Contains(b.notes[0], "REDIS_URL") {
		t.Errorf("notes: got %q, want one about REDIS_URL", b.notes)
	}

	// cookiecutter-django: POSTGRES_* when DATABASE_URL is unset, password from a secret file.
	b = newBuilder("POSTGRES_HOST=postgres", "POSTGRES_USER=debug", "POSTGRES_PASSWORD_FILE="+p, "POSTGRES_DB=proj")
	b.discover()
	if err := b.errs.err(); err != nil {
		t.Fatal(err)
	}
	if len(b.deps) != 1 || b.deps[0].shown != "postgres://debug@postgres:5432/proj" || b.deps[0].source != "POSTGRES_*" ||
		b.deps[0].url != "host='postgres' port=5432 user='debug' password='pw' dbname='proj'" {
		t.Errorf("POSTGRES_*: got %+v", b.deps)
	}

	// The same endpoint twice is probed once.
	b = newBuilder("REDIS_URL=redis://r:6379/0", "CELERY_BROKER_URL=redis://r:6379/0")
	b.discover()
	if err := b.errs.err(); err != nil || len(b.deps) != 1 {
		t.Errorf("dedup: got %+v, %v", b.deps, err)
	}
}

// TestTargetFixedOnce: the plan's Target is the checker's name, and the lock's is the same.
func TestTargetFixedOnce(t *testing.T) {
	p, err := Build([]string{"DATABASE_URL=pgsql://app:Db-s3cret@db:5432/app", "ENTRY_RELEASE=true"}, Command)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Dependencies[0]
	if d.Target != d.Checker.String() || d.Target != "postgres app@db:5432/app" || p.Release.Lock == nil || p.Release.Lock.Target != d.Target {
		t.Errorf("target %q, checker %q, lock %+v", d.Target, d.Checker, p.Release.Lock)
	}
	var out bytes.Buffer
	p.Print(&out)
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "lock: advisory lock 7261645163206162 on postgres app@db:5432/app") {
		t.Errorf("config:\n%s", out.String())
	}
}

func TestProcesses(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "Procfile")
	if err := os.WriteFile(pf, []byte("web: gunicorn app\nbeat-x: celery beat\nrelease: python manage.py migrate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Build([]string{"ENTRY_PROCFILE=" + pf, "ENTRY_FORMATION=web=2", "ENTRY_STOP_SIGNAL_BEAT_X=INT", "ENTRY_STOP_SIGNAL_NGINX=QUIT"}, Procfile)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pr := range p.Processes {
		got = append(got, pr.Name+" "+strings.Join(pr.Argv, ",")+" "+supervise.SignalName(pr.Stop))
	}
	want := "web.1 gunicorn,app SIGTERM|web.2 gunicorn,app SIGTERM|beat-x.1 celery,beat SIGINT"
	if strings.Join(got, "|") != want {
		t.Errorf("processes %q, want %q", got, want)
	}
	if len(p.Release.Steps) != 1 || p.Release.Steps[0].Command != "python manage.py migrate" {
		t.Errorf("release %+v", p.Release)
	}
	if len(p.Warnings) != 1+len(p.Stop.Warnings) || !strings.Contains(p.Warnings[0], "ENTRY_STOP_SIGNAL_NGINX") {
		t.Errorf("warnings %q, want one about NGINX", p.Warnings)
	}

	// Too many processes are refused up front.
	var many strings.Builder
	for i := range maxProcesses + 1 {
		many.WriteString("p" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)) + ": sleep 1\n")
	}
	if err := os.WriteFile(pf, []byte(many.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Build([]string{"ENTRY_PROCFILE=" + pf}, Procfile); err == nil || !strings.Contains(err.Error(), "over the limit of 1000") {
		t.Errorf("%d processes: got %v", maxProcesses+1, err)
	}
}

// TestCAFileReadOnce: the CA bundle read (bounded) by the plan is the one the https:// checker
// trusts.
func TestCAFileReadOnce(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Build([]string{"ENTRY_WAIT=" + srv.URL + "/health", "ENTRY_HTTP_CA_FILE=" + ca}, Command)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ca); err != nil { // the checker must not read it again
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Dependencies[0].Checker.Check(ctx); err != nil {
		t.Errorf("https check with the CA file: %v", err)
	}
}

// FuzzBuild: no environment panics the plan, and every message is one bounded line.
func FuzzBuild(f *testing.F) {
	f.Add("ENTRY_WAIT", "postgres://u:p@db/app", "ENTRY_STOP_SIGNAL_WEB", "QUIT")
	f.Add("ENTRY_RELEASE_LOCK_KEY", "0x10", "POSTGRES_PORT", "\n")
	f.Add("ENTRY_FORMATION", "web=1,all=3", "ENTRY_HEALTH_ADDR", "[::1]:0")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		_, err := Build([]string{k1 + "=" + v1, k2 + "=" + v2}, Command)
		var errs *Errors
		if err != nil && !errors.As(err, &errs) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if errs != nil {
			for _, e := range errs.List {
				if len(e.Error()) > maxMessage+10 || strings.ContainsAny(e.Error(), "\n\r\x1b") {
					t.Fatalf("message not one bounded line: %q", e.Error())
				}
			}
		}
	})
}

// TestNoControlCharactersShown: a value that reaches a log line or `entry config` cannot
// carry a control character.
func TestNoControlCharactersShown(t *testing.T) {
	for _, env := range []string{"DATABASE_URL=postgres://u:p@db\x1b[2J/app", "REDIS_URL=redis://r\x07:6379/0",
		"POSTGRES_USER=a\x1bb", "POSTGRES_HOST=db\x00"} {
		_, err := Build([]string{env}, Command)
		if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07\x00") {
			t.Errorf("%q: got %q, want an error without the control character", env, err)
		}
	}
	p, err := Build([]string{"ENTRY_RELEASE=echo \x1b[31m" + strings.Repeat("x", 400)}, Command)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.Print(&out)
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), strings.Repeat("x", 400)) {
		t.Errorf("config shows %q", out.String())
	}
}
