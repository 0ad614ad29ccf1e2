package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/supervise"
	"github.com/kelseyhightower/envconfig"
	"golang.org/x/sys/unix"
)

// spec is every ENTRY_* variable. envconfig derives the names (ENTRY_ + split words) and
// fills in the defaults; `entry help` prints the same struct, so the two cannot drift.
type spec struct {
	Wait             string        `split_words:"true" desc:"dependency URLs, comma or whitespace separated (postgres, amqp, redis, http(s), tcp://host:port); also ENTRY_WAIT_FILE"`
	Discover         bool          `split_words:"true" default:"true" desc:"also wait for DATABASE_URL (else POSTGRES_*), CELERY_BROKER_URL and REDIS_URL"`
	SkipWait         bool          `split_words:"true" desc:"skip the wait phase"`
	WaitTimeout      time.Duration `split_words:"true" default:"120s" desc:"overall deadline of the wait phase (0 waits forever)"`
	AttemptTimeout   time.Duration `split_words:"true" default:"5s" desc:"bound on one probe of one dependency"`
	BackoffInitial   time.Duration `split_words:"true" default:"100ms" desc:"delay before the second probe; doubles each time"`
	BackoffMax       time.Duration `split_words:"true" default:"1s" desc:"cap of the delay between probes (jittered by 20%)"`
	ProgressInterval time.Duration `split_words:"true" default:"10s" desc:"how often a dependency that is still not ready is reported"`
	HttpCaFile       string        `split_words:"true" desc:"PEM file of CAs trusted by https:// checks (default: system roots)"`
	HttpInsecure     bool          `split_words:"true" desc:"skip TLS verification in https:// checks"`

	Release            string        `split_words:"true" desc:"release steps run once before the processes start, one per line (e.g. python manage.py migrate --noinput)"`
	ReleaseLock        string        `split_words:"true" default:"auto" desc:"auto, true or false: run the release steps under a Postgres advisory lock (auto: when a Postgres dependency is known)"`
	ReleaseLockTimeout time.Duration `split_words:"true" default:"15m" desc:"how long a replica waits for another one's release to finish"`
	ReleaseLockKey     int64         `split_words:"true" default:"7261645163206162" desc:"the advisory lock key; give unrelated apps sharing a database different keys"`
	SkipRelease        bool          `split_words:"true" desc:"skip the release steps (for ad-hoc runs: docker compose run web python manage.py shell)"`

	Procfile      string        `split_words:"true" default:"Procfile" desc:"Procfile used when no command is given"`
	Processes     string        `split_words:"true" desc:"process types to run, comma separated (default: all but release)"`
	Formation     string        `split_words:"true" desc:"instances per type, e.g. web=1,worker=2 (all=N sets the default)"`
	Restart       string        `split_words:"true" default:"on-failure" desc:"Procfile mode: never, on-failure or always"`
	RestartLimit  int           `split_words:"true" default:"5" desc:"crash loop: more restarts than this within ENTRY_RESTART_WINDOW stops entry"`
	RestartWindow time.Duration `split_words:"true" default:"60s" desc:"window of the crash-loop limit"`
	StopTimeout   time.Duration `split_words:"true" default:"8s" desc:"grace between the stop signal and SIGKILL (fits docker stop's 10s)"`
	StopSignal    string        `split_words:"true" default:"TERM" desc:"stop signal; per process type ENTRY_STOP_SIGNAL_<TYPE> (nginx: QUIT, uwsgi: INT)"`

	HealthAddr string `split_words:"true" desc:"address of the optional HTTP health listener (/livez, /readyz, /status), e.g. :8081"`
	LogFormat  string `split_words:"true" default:"text" desc:"text or json"`
	LogLevel   string `split_words:"true" default:"info" desc:"debug, info, warn or error"`
}

// config is the validated plan, built before anything starts.
type config struct {
	spec
	deps      []dependency
	notes     []string // things skipped during discovery, shown by `entry config` and logged
	warnings  []string // unknown ENTRY_* variables, logged as warnings
	release   []string // release steps from ENTRY_RELEASE; Procfile release: lines join later
	lock      bool
	stop      syscall.Signal
	formation map[string]int
	processes []string
}

// configError is an invalid input: entry exits 78 before starting anything.
type configError struct {
	Var string
	Err error
}

func (e *configError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *configError) Unwrap() error { return e.Err }

func badVar(name, format string, args ...any) error {
	return &configError{Var: name, Err: fmt.Errorf(format, args...)}
}

// loadConfig reads ENTRY_* through envconfig and the app's own variables through getenv.
func loadConfig(getenv func(string) string) (*config, error) {
	var s spec
	if err := envconfig.Process("entry", &s); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			// pe.Value is deliberately not echoed for strings: ENTRY_WAIT may hold a password.
			return nil, badVar(pe.KeyName, "invalid %s %q", typeWord(pe.TypeName), pe.Value)
		}
		return nil, &configError{Var: "ENTRY_*", Err: err}
	}
	c := &config{spec: s}
	if err := c.validate(getenv); err != nil {
		return nil, err
	}
	c.warnings = unknownVars(os.Environ())
	return c, nil
}

// unknownVars lists ENTRY_* variables entry does not know: a typo such as
// ENTRY_WAIT_TIMOUT would otherwise be ignored without a word.
func unknownVars(environ []string) []string {
	var keys strings.Builder
	var s spec
	_ = envconfig.Usagef("entry", &s, &keys, "{{range .}}{{usage_key .}}\n{{end}}")
	known := map[string]bool{"ENTRY_WAIT_FILE": true}
	for _, v := range opsVars {
		known[v[0]] = true
	}
	for _, k := range strings.Fields(keys.String()) {
		known[k] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ENTRY_") && !known[k] && !strings.HasPrefix(k, "ENTRY_STOP_SIGNAL_") {
			out = append(out, fmt.Sprintf("unknown variable %s is ignored (entry help lists them all)", k))
		}
	}
	return out
}

func typeWord(t string) string {
	switch t {
	case "time.Duration":
		return "duration (want e.g. 30s, 2m)"
	case "bool":
		return "boolean (want true or false)"
	case "int", "int64":
		return "integer"
	}
	return "value"
}

func (c *config) validate(getenv func(string) string) error {
	durations := []struct {
		name string
		d    time.Duration
		zero bool // zero allowed
	}{
		{"ENTRY_WAIT_TIMEOUT", c.WaitTimeout, true},
		{"ENTRY_ATTEMPT_TIMEOUT", c.AttemptTimeout, false},
		{"ENTRY_BACKOFF_INITIAL", c.BackoffInitial, false},
		{"ENTRY_BACKOFF_MAX", c.BackoffMax, false},
		{"ENTRY_PROGRESS_INTERVAL", c.ProgressInterval, false},
		{"ENTRY_RELEASE_LOCK_TIMEOUT", c.ReleaseLockTimeout, false},
		{"ENTRY_RESTART_WINDOW", c.RestartWindow, false},
		{"ENTRY_STOP_TIMEOUT", c.StopTimeout, true},
	}
	for _, d := range durations {
		if d.d < 0 || (d.d == 0 && !d.zero) {
			return badVar(d.name, "must be positive, got %s", d.d)
		}
	}
	if c.BackoffMax < c.BackoffInitial {
		return badVar("ENTRY_BACKOFF_MAX", "%s is below ENTRY_BACKOFF_INITIAL %s", c.BackoffMax, c.BackoffInitial)
	}
	if c.RestartLimit < 1 {
		return badVar("ENTRY_RESTART_LIMIT", "must be at least 1, got %d", c.RestartLimit)
	}
	switch c.Restart {
	case "never", "on-failure", "always":
	default:
		return badVar("ENTRY_RESTART", "want never, on-failure or always, got %q", c.Restart)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return badVar("ENTRY_LOG_FORMAT", "want text or json, got %q", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return badVar("ENTRY_LOG_LEVEL", "%v", err)
	}
	sig, err := parseSignal(c.StopSignal)
	if err != nil {
		return badVar("ENTRY_STOP_SIGNAL", "%v", err)
	}
	c.stop = sig
	if c.HealthAddr != "" {
		if err := checkListenAddr(c.HealthAddr); err != nil {
			return badVar("ENTRY_HEALTH_ADDR", "%v", err)
		}
	}
	if c.HttpCaFile != "" {
		if _, err := os.Stat(c.HttpCaFile); err != nil {
			return badVar("ENTRY_HTTP_CA_FILE", "%v", errors.Unwrap(err))
		}
	}
	if c.Processes != "" {
		for _, p := range splitList(c.Processes) {
			if !procfile.ValidType(p) {
				return badVar("ENTRY_PROCESSES", "invalid process type %q", p)
			}
			c.processes = append(c.processes, p)
		}
	}
	if c.formation, err = procfile.ParseFormation(c.Formation); err != nil {
		return badVar("ENTRY_FORMATION", "%v", err)
	}
	for _, line := range strings.Split(c.Release, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			c.release = append(c.release, line)
		}
	}
	if err := c.discover(getenv); err != nil {
		return err
	}
	switch strings.ToLower(c.ReleaseLock) {
	case "auto":
		c.lock = c.postgres() != nil
	case "true", "1", "yes", "on":
		if c.postgres() == nil {
			return badVar("ENTRY_RELEASE_LOCK", "true, but no Postgres dependency is known (set DATABASE_URL or add a postgres:// URL to ENTRY_WAIT)")
		}
		c.lock = true
	case "false", "0", "no", "off":
	default:
		return badVar("ENTRY_RELEASE_LOCK", "want auto, true or false, got %q", c.ReleaseLock)
	}
	return nil
}

// postgres returns the first Postgres dependency: the one the release lock is taken on.
func (c *config) postgres() *dependency {
	for i := range c.deps {
		if c.deps[i].kind == kindPostgres {
			return &c.deps[i]
		}
	}
	return nil
}

// stopSignal is the stop signal of a process type: ENTRY_STOP_SIGNAL_<TYPE> or the default.
func (c *config) stopSignal(getenv func(string) string, typ string) (syscall.Signal, error) {
	name := "ENTRY_STOP_SIGNAL_" + strings.ToUpper(strings.ReplaceAll(typ, "-", "_"))
	v := getenv(name)
	if v == "" {
		return c.stop, nil
	}
	sig, err := parseSignal(v)
	if err != nil {
		return 0, badVar(name, "%v", err)
	}
	return sig, nil
}

func parseSignal(s string) (syscall.Signal, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	var sig syscall.Signal
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		sig = syscall.Signal(n)
	} else {
		if !strings.HasPrefix(s, "SIG") {
			s = "SIG" + s
		}
		if sig = unix.SignalNum(s); sig == 0 {
			return 0, fmt.Errorf("unknown signal %q", strings.TrimPrefix(s, "SIG"))
		}
	}
	switch sig {
	case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG:
		return 0, fmt.Errorf("%s cannot be a stop signal", supervise.SignalName(sig))
	}
	return sig, nil
}

func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or :port, got %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// splitList splits on commas and whitespace, dropping empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

// fileEnv reads NAME or NAME_FILE as the official postgres image does: setting both is an
// error, and trailing newlines of the file are stripped. It returns the value and the name of
// the variable it came from ("" when neither is set).
func fileEnv(getenv func(string) string, name string) (string, string, error) {
	v, path := getenv(name), getenv(name+"_FILE")
	switch {
	case v != "" && path != "":
		return "", "", badVar(name+"_FILE", "both %s and %s_FILE are set; set one", name, name)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", "", badVar(name+"_FILE", "cannot read %s: %v", path, err)
		}
		return strings.TrimRight(string(b), "\r\n"), name + "_FILE", nil
	case v != "":
		return v, name, nil
	}
	return "", "", nil
}
