package throwaway

import (
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	RequirePass string // requirepass; "" = none
	// PreloadKeys > 0 writes an RDB file with that many keys (DEBUG
	// POPULATE) before NewRedis returns, so that Start loads a dataset.
	PreloadKeys int
	// KeyLoadDelay slows the loading of each key by this many microseconds
	// (--key-load-delay), so that the server answers LOADING for a while.
	KeyLoadDelay int
	Args         []string // extra redis-server arguments, e.g. "--user", "app on >pw +@all -ping"
}

// Redis is a throwaway redis-server, not running until Start.
type Redis struct {
	server
	Port int
	Dir  string

	bin  string
	opts RedisOptions
}

// NewRedis prepares a server directory (and the preloaded dataset, if any).
func NewRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("throwaway redis: %v", err)
	}
	dir := t.TempDir()
	r := &Redis{Port: FreePort(t), Dir: dir, bin: bin, opts: opts}
	r.init(t, "redis", filepath.Join(dir, "redis.log"), r.Stop)
	if opts.PreloadKeys > 0 {
		r.startWith(false)
		r.waitReady(r.Addr(), 10*time.Second, nil)
		for _, cmd := range [][]string{{"DEBUG", "POPULATE", strconv.Itoa(opts.PreloadKeys)}, {"SAVE"}} {
			if out, err := r.cli(cmd...); err != nil || !strings.Contains(out, "OK") {
				t.Fatalf("throwaway redis: %s: %v %s", strings.Join(cmd, " "), err, out)
			}
		}
		r.Stop()
	}
	return r
}

// cli runs redis-cli against the server with the configured password.
func (r *Redis) cli(args ...string) (string, error) {
	all := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port)}
	if r.opts.RequirePass != "" {
		all = append(all, "--no-auth-warning", "-a", r.opts.RequirePass)
	}
	out, err := exec.Command("redis-cli", append(all, args...)...).CombinedOutput()
	return string(out), err
}

// Start launches the server and returns at once, before it accepts
// connections (and, with a preloaded dataset, before loading finishes).
func (r *Redis) Start() {
	r.t.Helper()
	r.startWith(true)
}

// startWith starts the server; loadDelay applies opts.KeyLoadDelay, which
// would only slow down the run that writes the preloaded dataset.
func (r *Redis) startWith(loadDelay bool) {
	r.t.Helper()
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
		"--protected-mode", "no", "--enable-debug-command", "local", "--logfile", ""}
	if r.opts.RequirePass != "" {
		args = append(args, "--requirepass", r.opts.RequirePass)
	}
	if loadDelay && r.opts.KeyLoadDelay > 0 {
		// Serve clients (with LOADING) every 1 KiB of the RDB, not every 2 MiB.
		args = append(args, "--key-load-delay", strconv.Itoa(r.opts.KeyLoadDelay),
			"--loading-process-events-interval-bytes", "1024")
	}
	args = append(args, r.opts.Args...)
	r.start(procSpec{name: "redis-server", path: r.bin, args: args, dir: r.Dir, logPath: r.logPath})
}

// WaitReady blocks until PING answers PONG, or fails the test.
func (r *Redis) WaitReady(timeout time.Duration) {
	r.t.Helper()
	r.waitReady(r.Addr(), timeout, func() (bool, string) {
		out, err := r.cli("PING")
		return err == nil && strings.Contains(out, "PONG"), out
	})
}

// StartAndWait is Start followed by WaitReady(30s).
func (r *Redis) StartAndWait() {
	r.t.Helper()
	r.Start()
	r.WaitReady(30 * time.Second)
}

// Stop terminates the server (SIGTERM; it does not save: --save "") and
// waits for it to exit.
func (r *Redis) Stop() { r.stop(syscall.SIGTERM, 10*time.Second) }

// Addr is "127.0.0.1:port".
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// URL returns redis://[user]:[password]@127.0.0.1:port/db; with an empty
// user and password, redis://127.0.0.1:port/db.
func (r *Redis) URL(user, password string, db int) string {
	u := url.URL{Scheme: "redis", Host: r.Addr(), Path: fmt.Sprintf("/%d", db)}
	if user != "" || password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}
