package throwaway

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostgresOptions configures NewPostgres.
type PostgresOptions struct {
	User      string   // superuser name; default "postgres"
	Password  string   // superuser password (scram-sha-256); default "postgres"
	Databases []string // created at initdb time
	// SQL runs once after initdb, in single-user mode, one statement per
	// element (e.g. "CREATE ROLE app LOGIN PASSWORD 'x'").
	SQL []string
	// HBA lines are placed before initdb's own pg_hba.conf rules
	// (e.g. "host all blocked 127.0.0.1/32 reject").
	HBA []string
	// Settings are passed as -c name=value at every start.
	Settings map[string]string
}

// Postgres is a throwaway PostgreSQL cluster: initialised by NewPostgres,
// not running until Start.
type Postgres struct {
	server
	Port int
	Dir  string // data directory

	bin  string
	opts PostgresOptions
	as   runAs
}

// PostgresBinDir finds the newest installed server's bin directory
// (/usr/lib/postgresql/N/bin on Debian), or the directory of "postgres" on
// PATH.
func PostgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb) found in /usr/lib/postgresql/*/bin or PATH")
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// NewPostgres runs initdb (scram-sha-256 for TCP, trust for the disabled
// local socket), creates the databases and runs opts.SQL. The server is not
// started. It fails the test on any error.
func NewPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	opts.User = cmp.Or(opts.User, "postgres")
	opts.Password = cmp.Or(opts.Password, "postgres")
	bin, err := PostgresBinDir()
	if err != nil {
		t.Fatalf("throwaway: %v", err)
	}
	as, err := accountFor("postgres")
	if err != nil {
		t.Fatalf("throwaway: %v", err)
	}
	root := tempDir(t, as)
	p := &Postgres{Port: FreePort(t), Dir: filepath.Join(root, "data"), bin: bin, opts: opts, as: as}
	p.init(t, "postgres", filepath.Join(root, "postgres.log"), p.Stop)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("throwaway postgres: %v", err)
		}
	}
	must(os.Mkdir(p.Dir, 0o700))
	must(as.chown(p.Dir))
	pwFile := filepath.Join(root, "pwfile")
	must(os.WriteFile(pwFile, []byte(opts.Password+"\n"), 0o600))
	must(as.chown(pwFile))
	defer os.Remove(pwFile)

	must(p.run(nil, "initdb", "-D", p.Dir, "-U", opts.User, "--pwfile", pwFile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions"))

	if len(opts.HBA) > 0 {
		hba := filepath.Join(p.Dir, "pg_hba.conf")
		old, err := os.ReadFile(hba)
		must(err)
		must(os.WriteFile(hba, []byte(strings.Join(opts.HBA, "\n")+"\n"+string(old)), 0o600))
	}
	var sql []string
	for _, db := range opts.Databases {
		sql = append(sql, fmt.Sprintf(`CREATE DATABASE "%s";`, strings.ReplaceAll(db, `"`, `""`)))
	}
	sql = append(sql, opts.SQL...)
	if len(sql) > 0 {
		// Single-user mode: one statement per line, no server, no socket.
		input := strings.Join(sql, "\n") + "\n"
		must(p.run(strings.NewReader(input), "postgres", "--single", "-D", p.Dir, "-c", "exit_on_error=on", "postgres"))
	}
	return p
}

// run executes a PostgreSQL tool as the server account, logging to the
// server log.
func (p *Postgres) run(stdin *strings.Reader, tool string, args ...string) error {
	cmd := exec.Command(filepath.Join(p.bin, tool), args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Dir = filepath.Dir(p.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.as.cred, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if f, ferr := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
		fmt.Fprintf(f, "== %s %s\n%s", tool, strings.Join(args, " "), out)
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", tool, err, out)
	}
	if tool == "postgres" && strings.Contains(string(out), "ERROR:") {
		return fmt.Errorf("single-user SQL failed:\n%s", out)
	}
	return nil
}

// Start launches the server and returns at once, before it accepts
// connections. Starting a running server fails the test.
func (p *Postgres) Start() {
	p.t.Helper()
	args := []string{"-D", p.Dir, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "shared_buffers=16MB", "-c", "max_connections=50"}
	keys := make([]string, 0, len(p.opts.Settings))
	for k := range p.opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+p.opts.Settings[k])
	}
	p.start(procSpec{name: "postgres", path: filepath.Join(p.bin, "postgres"), args: args,
		dir: filepath.Dir(p.Dir), logPath: p.logPath, cred: p.as.cred})
}

// WaitReady blocks until the server accepts TCP connections and
// pg_isready reports it accepting sessions, or fails the test.
func (p *Postgres) WaitReady(timeout time.Duration) {
	p.t.Helper()
	p.waitReady(p.Addr(), timeout, func() (bool, string) {
		cmd := exec.Command(filepath.Join(p.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-t", "1")
		err := cmd.Run()
		return err == nil, fmt.Sprintf("pg_isready: %v", err)
	})
}

// StartAndWait is Start followed by WaitReady(30s).
func (p *Postgres) StartAndWait() {
	p.t.Helper()
	p.Start()
	p.WaitReady(30 * time.Second)
}

// Stop shuts the server down (fast shutdown) and waits for it to exit.
func (p *Postgres) Stop() { p.stop(syscall.SIGINT, 10*time.Second) }

// Crash stops the server the way a power cut would (immediate shutdown):
// the next Start goes through crash recovery, during which the server
// answers 57P03.
func (p *Postgres) Crash() { p.stop(syscall.SIGQUIT, 5*time.Second) }

// Addr is "127.0.0.1:port".
func (p *Postgres) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// URL returns postgres://user:password@127.0.0.1:port/db?sslmode=disable.
func (p *Postgres) URL(user, password, db string) string {
	u := url.URL{Scheme: "postgres", Host: p.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

// SuperuserURL is URL for the superuser and the "postgres" database.
func (p *Postgres) SuperuserURL() string { return p.URL(p.opts.User, p.opts.Password, "postgres") }
