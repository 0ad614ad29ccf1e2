package plan

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/entry-dev/entry/internal/privilege"
	"github.com/entry-dev/entry/internal/redact"
	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/readiness"
	"github.com/entry-dev/entry/release"
	"github.com/entry-dev/entry/supervise"
)

// Plan is everything one run of entry will do, resolved and validated before anything starts.
// Build returns it complete or not at all; nothing changes it afterwards, and the phases read
// nothing else (no environment, no file).
type Plan struct {
	Dependencies []Dependency
	Secrets      []string // the dependencies' passwords: masked where a printed command holds one as a whole word
	Notes        []string // what discovery skipped and why; shown by `entry config`, logged at info
	Warnings     []string // unknown ENTRY_* variables, per-type forms naming no Procfile type, Stop.Warnings

	Wait    Wait
	Release Release
	// WaitCommand, when set, must exit 0 before the processes start.
	WaitCommand *WaitCommand

	Procfile  string    // the Procfile's path, as ENTRY_PROCFILE gives it
	Processes []Process // the Procfile's instances; empty when a command is given
	Stop      Stop      // the main process's stop, every type without its own signal or grace, and the budget
	Restart   Restart
	Singleton *Singleton // nil: every type runs in every replica

	HealthAddr string // "" when off
	Log        Log

	User   *privilege.User // nil: entry stays who it is
	Chown  []string        // directories given to User first
	Sentry *Sentry         // nil: no reports
}

// Dependency is one service to wait for.
type Dependency struct {
	Kind    Kind
	Source  string            // the variable it came from: DATABASE_URL, ENTRY_WAIT_FILE, POSTGRES_*...
	Target  string            // redacted, as every output shows it
	Checker readiness.Checker // built once, here: its constructor's checks are configuration checks
	url     string            // with credentials: for the release lock's connection only
}

// Wait is the wait phase. Options.Log is the caller's to set.
type Wait struct {
	Skip    bool // ENTRY_SKIP_WAIT
	Options readiness.Options
}

// Release is the release phase.
type Release struct {
	Steps []release.Step
	From  string // where the steps came from, for `entry config`
	Skip  bool   // ENTRY_SKIP_RELEASE
	Lock  *Lock  // nil: the steps run without the advisory lock
}

// Lock is the advisory lock the release steps run under.
type Lock struct {
	Key     int64
	Timeout time.Duration
	DSN     string // the first Postgres dependency's connection string, with credentials
	Target  string // the same, redacted
}

// Process is one instance of a Procfile type: web.1, worker.2...
type Process struct {
	Name, Type, Command string
	Argv                []string // what is executed: the words, or /bin/sh -c
	Group               bool     // the shell stays the parent: signal the process group
	Stop                syscall.Signal
	StopTimeout         time.Duration // its grace: ENTRY_STOP_TIMEOUT_<TYPE>, else ENTRY_STOP_TIMEOUT
}

// Stop is how a process is stopped, and what the whole stop may take.
type Stop struct {
	Signal  syscall.Signal
	Timeout time.Duration
	Delay   time.Duration // ENTRY_SHUTDOWN_DELAY: readyz 503 first, stop signals after it
	Budget  time.Duration // ENTRY_STOP_BUDGET; 0 when unset

	// Warnings say where what entry can see does not fit the graces or the
	// budget (see budget.go); they are also in Plan.Warnings.
	Warnings []string
	// gunicornArgs is GUNICORN_CMD_ARGS as the processes inherit it, and
	// gunicornConf whether ./gunicorn.conf.py, which gunicorn reads by
	// itself, exists: both for CommandWarnings.
	gunicornArgs string
	gunicornConf bool
}

// Restart is the Procfile mode's restart policy.
type Restart struct {
	Policy string // never, on-failure, always
	Limit  int
	Window time.Duration
}

// Log is entry's own logging.
type Log struct {
	Format string // text or json
	Level  slog.Level
}

// Mode says what the invocation needs from the Procfile.
type Mode int

const (
	// Command: a command is given; the Procfile is not read.
	Command Mode = iota
	// Procfile: the Procfile's processes run; the file must exist and name one.
	Procfile
	// Describe: `entry config`; the Procfile is read when it exists.
	Describe
)

// maxProcesses bounds the instances one entry supervises. Each holds two pipes and a reaper
// slot; a Procfile of ten thousand lines would otherwise start for half a minute and then
// fail on the descriptor limit.
const maxProcesses = 1000

// builder carries one Build: the environment, what was found so far, and every error.
type builder struct {
	env   environment
	spec  Spec
	errs  Errors
	deps  []dependency
	notes []string
}

// Build reads environ (as os.Environ returns it), the _FILE files and, as mode asks, the
// Procfile, and returns the plan. The error, an *Errors, lists every invalid input at once.
func Build(environ []string, mode Mode) (*Plan, error) {
	return build(environ, mode, accounts{passwd: "/etc/passwd", group: "/etc/group"})
}

func build(environ []string, mode Mode, acc accounts) (*Plan, error) {
	b := &builder{env: newEnv(environ)}
	b.spec = load(b.env, &b.errs)
	s := &b.spec
	p := &Plan{Procfile: s.Procfile, HealthAddr: s.HealthAddr}

	b.durations()
	if s.RestartLimit < 1 && !b.errs.has("ENTRY_RESTART_LIMIT") {
		b.errs.add("ENTRY_RESTART_LIMIT", "must be at least 1, got %d", s.RestartLimit)
	}
	switch s.Restart {
	case "never", "on-failure", "always":
	default:
		b.errs.add("ENTRY_RESTART", "want never, on-failure or always, got %q", s.Restart)
	}
	p.Restart = Restart{Policy: s.Restart, Limit: s.RestartLimit, Window: s.RestartWindow}
	switch s.LogFormat {
	case "text", "json":
	default:
		b.errs.add("ENTRY_LOG_FORMAT", "want text or json, got %q", s.LogFormat)
	}
	level, err := parseLevel(s.LogLevel)
	if err != nil {
		b.errs.add("ENTRY_LOG_LEVEL", "%v", err)
	}
	p.Log = Log{Format: s.LogFormat, Level: level}
	if s.HealthAddr != "" {
		if err := checkListenAddr(s.HealthAddr); err != nil {
			b.errs.add("ENTRY_HEALTH_ADDR", "%v", err)
		}
	}
	p.Stop = Stop{Timeout: s.StopTimeout, Delay: s.ShutdownDelay, Budget: s.StopBudget, gunicornArgs: b.env.Get("GUNICORN_CMD_ARGS"), gunicornConf: exists("gunicorn.conf.py")}
	if p.Stop.Signal, err = supervise.ParseStopSignal(s.StopSignal); err != nil {
		b.errs.add("ENTRY_STOP_SIGNAL", "%v", err)
	}
	typeSignals := b.typeSignals()
	typeTimeouts := b.typeTimeouts()

	var ca []byte
	if s.HTTPCAFile != "" {
		ca = b.caFile(s.HTTPCAFile)
	}
	b.discover()
	p.Dependencies = b.checkers(readiness.HTTPOptions{CA: ca, Insecure: s.HTTPInsecure})
	p.Notes = b.notes
	for _, d := range p.Dependencies {
		p.Secrets = append(p.Secrets, redact.Secrets(d.url)...)
	}
	backoff := readiness.DefaultBackoff // Factor and Jitter are not variables: readiness owns them
	backoff.Initial, backoff.Max = s.BackoffInitial, s.BackoffMax
	p.Wait = Wait{Skip: s.SkipWait, Options: readiness.Options{
		Timeout:          s.WaitTimeout,
		AttemptTimeout:   s.AttemptTimeout,
		Backoff:          backoff,
		ProgressInterval: s.ProgressInterval,
	}}

	var entries []procfile.Entry
	if mode != Command {
		entries = b.procfile(mode == Procfile)
	}
	processes := b.processes()
	formation, err := procfile.ParseFormation(s.Formation)
	if err != nil {
		b.errs.add("ENTRY_FORMATION", "%v", err)
	}
	if entries != nil {
		p.Processes = b.instances(entries, processes, formation, mode == Procfile)
		for _, typ := range sortedKeys(typeSignals) {
			if !hasType(entries, typ) {
				p.Warnings = append(p.Warnings, clean(fmt.Sprintf("%s%s names no process type of %s", stopSignalPfx, typ, s.Procfile)))
			}
		}
		for _, typ := range sortedKeys(typeTimeouts) {
			if !hasType(entries, typ) {
				p.Warnings = append(p.Warnings, clean(fmt.Sprintf("%s%s names no process type of %s", stopTimeoutPfx, typ, s.Procfile)))
			}
		}
		for i := range p.Processes {
			pr := &p.Processes[i]
			pr.Stop, pr.StopTimeout = p.Stop.Signal, p.Stop.Timeout
			if sig, ok := typeSignals[typeKey(pr.Type)]; ok {
				pr.Stop = sig
			}
			if d, ok := typeTimeouts[typeKey(pr.Type)]; ok {
				pr.StopTimeout = d
			}
		}
	}
	p.Stop.Warnings = p.Stop.budgetWarnings(p.Processes)
	p.Warnings = append(p.Warnings, p.Stop.Warnings...)
	p.Release = b.release(entries, p.Dependencies, p.Secrets)
	b.operations(p, acc)
	p.WaitCommand = b.waitCommand(p.Dependencies, p.Secrets)
	var warn []string
	p.Singleton, warn = b.singleton(entries, p.Dependencies)
	p.Warnings = append(p.Warnings, warn...)

	for _, name := range b.env.Names() {
		if strings.HasPrefix(name, "ENTRY_") && !known(name) {
			p.Warnings = append(p.Warnings, clean(fmt.Sprintf("unknown variable %s is ignored (entry help lists them all)", name)))
		}
	}
	if err := b.errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

func (b *builder) note(format string, args ...any) {
	b.notes = append(b.notes, clean(fmt.Sprintf(format, args...)))
}

// value returns a variable that is not a Spec field, refusing one over limit bytes.
func (b *builder) value(name string, limit int) (string, bool) {
	v := b.env.Get(name)
	if len(v) > limit {
		if !b.errs.has(name) {
			b.errs.add(name, "%s", tooLong(len(v), limit))
		}
		return "", false
	}
	return v, true
}

// fileEnv reads NAME or NAME_FILE as the official postgres image does: setting both is an
// error, and trailing newlines of the file are stripped. It returns the value and the name of
// the variable it came from ("" when neither is set).
func (b *builder) fileEnv(name string, limit int) (value, source string) {
	fileVar := name + "_FILE"
	v, ok := b.value(name, limit)
	path, pathOK := b.value(fileVar, maxValue)
	switch {
	case !ok || !pathOK:
		return "", ""
	case v != "" && path != "":
		b.errs.add(fileVar, "both %s and %s are set; set one", name, fileVar)
		return "", ""
	case path != "":
		data, err := readFile(path, maxSecretFile)
		if err != nil {
			b.errs.add(fileVar, "%v", err)
			return "", ""
		}
		v = strings.TrimRight(string(data), "\r\n")
		if len(v) > limit {
			b.errs.add(fileVar, "%s", tooLong(len(v), limit))
			return "", ""
		}
		return v, fileVar
	case v != "":
		return v, name
	}
	return "", ""
}

func (b *builder) durations() {
	s := &b.spec
	for _, d := range []struct {
		name string
		d    time.Duration
		zero bool // zero allowed
	}{
		{"ENTRY_WAIT_TIMEOUT", s.WaitTimeout, true},
		{"ENTRY_ATTEMPT_TIMEOUT", s.AttemptTimeout, false},
		{"ENTRY_BACKOFF_INITIAL", s.BackoffInitial, false},
		{"ENTRY_BACKOFF_MAX", s.BackoffMax, false},
		{"ENTRY_PROGRESS_INTERVAL", s.ProgressInterval, false},
		{"ENTRY_RELEASE_LOCK_TIMEOUT", s.ReleaseLockTimeout, false},
		{"ENTRY_RESTART_WINDOW", s.RestartWindow, false},
		{"ENTRY_STOP_TIMEOUT", s.StopTimeout, true},
		{"ENTRY_SHUTDOWN_DELAY", s.ShutdownDelay, true},
		{"ENTRY_STOP_BUDGET", s.StopBudget, true},
		{"ENTRY_SENTRY_TIMEOUT", s.SentryTimeout, false},
	} {
		if b.errs.has(d.name) {
			continue
		}
		if d.d < 0 || (d.d == 0 && !d.zero) {
			b.errs.add(d.name, "must be positive, got %s", d.d)
		}
	}
	if s.BackoffMax < s.BackoffInitial && !b.errs.has("ENTRY_BACKOFF_MAX") && !b.errs.has("ENTRY_BACKOFF_INITIAL") {
		b.errs.add("ENTRY_BACKOFF_MAX", "%s is below ENTRY_BACKOFF_INITIAL %s", s.BackoffMax, s.BackoffInitial)
	}
}

// typeSignals reads every ENTRY_STOP_SIGNAL_<TYPE>, whether or not the Procfile is read: a
// typo must stop entry before the release runs, not when the processes start.
func (b *builder) typeSignals() map[string]syscall.Signal {
	out := map[string]syscall.Signal{}
	for _, name := range b.env.Names() {
		typ, ok := strings.CutPrefix(name, stopSignalPfx)
		if !ok || typ == "" {
			continue
		}
		v, ok := b.value(name, maxValue)
		if !ok || v == "" {
			continue
		}
		sig, err := supervise.ParseStopSignal(v)
		if err != nil {
			b.errs.add(name, "%v", err)
			continue
		}
		out[typ] = sig
	}
	return out
}

// typeTimeouts reads every ENTRY_STOP_TIMEOUT_<TYPE>, as typeSignals does.
func (b *builder) typeTimeouts() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, name := range b.env.Names() {
		typ, ok := strings.CutPrefix(name, stopTimeoutPfx)
		if !ok || typ == "" {
			continue
		}
		v, ok := b.value(name, maxValue)
		if !ok || v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			b.errs.add(name, "invalid duration %q (want e.g. 30s, 2m)", v)
		case d < 0:
			b.errs.add(name, "must not be negative, got %s", d)
		default:
			out[typ] = d
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// typeKey is a process type as it appears in ENTRY_STOP_SIGNAL_<TYPE>.
func typeKey(typ string) string { return strings.ToUpper(strings.ReplaceAll(typ, "-", "_")) }

func hasType(entries []procfile.Entry, key string) bool {
	for _, e := range entries {
		if typeKey(e.Type) == key {
			return true
		}
	}
	return false
}

func (b *builder) caFile(path string) []byte {
	pem, err := readFile(path, maxFile)
	if err != nil {
		b.errs.add("ENTRY_HTTP_CA_FILE", "%v", err)
		return nil
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		b.errs.add("ENTRY_HTTP_CA_FILE", "%s: no PEM certificate found", path)
		return nil
	}
	return pem
}

// checkers builds one probe per dependency; the constructors check what parsing could not.
// Each dependency's Target is its checker's name, fixed here, the same in every output.
func (b *builder) checkers(httpOpt readiness.HTTPOptions) []Dependency {
	var out []Dependency
	for _, d := range b.deps {
		var ch readiness.Checker
		var err error
		switch d.kind {
		case Postgres:
			ch, err = nilSafe(readiness.NewPostgres(d.url))
		case AMQP:
			ch, err = nilSafe(readiness.NewAMQP(d.url))
		case Redis:
			ch, err = nilSafe(readiness.NewRedis(d.url))
		case HTTP:
			ch, err = nilSafe(readiness.NewHTTP(d.url, httpOpt))
		case TCP:
			ch, err = nilSafe(readiness.NewTCP(d.url))
		}
		if err != nil {
			b.errs.add(d.source, "%s: %v", d.shown, err)
			continue
		}
		out = append(out, Dependency{Kind: d.kind, Source: d.source, Target: ch.String(), Checker: ch, url: d.url})
	}
	return out
}

// nilSafe turns a typed constructor result into the interface without a typed-nil trap.
func nilSafe[T readiness.Checker](v T, err error) (readiness.Checker, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// procfile reads ENTRY_PROCFILE. A missing file is an error only when it is required.
func (b *builder) procfile(required bool) []procfile.Entry {
	path := b.spec.Procfile
	data, err := readFile(path, maxFile)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist) && !required:
			return nil
		case errors.Is(err, fs.ErrNotExist):
			b.errs.add("ENTRY_PROCFILE", "%s: no such file (give a command, or a Procfile with \"type: command\" lines)", path)
		default:
			b.errs.add("ENTRY_PROCFILE", "%v", err)
		}
		return nil
	}
	entries, err := procfile.Parse(bytes.NewReader(data))
	if err != nil {
		b.errs.add("ENTRY_PROCFILE", "%s: %v", path, err)
		return nil
	}
	if entries == nil {
		entries = []procfile.Entry{}
	}
	return entries
}

// processes reads ENTRY_PROCESSES.
func (b *builder) processes() []string {
	var out []string
	for _, p := range splitList(b.spec.Processes) {
		if !procfile.ValidType(p) {
			b.errs.add("ENTRY_PROCESSES", "invalid process type %q", p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// instances expands the formation over the types ENTRY_PROCESSES names (default: all but
// release, which runs in the release phase).
func (b *builder) instances(entries []procfile.Entry, processes []string, formation map[string]int, required bool) []Process {
	path := b.spec.Procfile
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Type] = true
	}
	want := map[string]bool{}
	for _, p := range processes {
		want[p] = true
		if !have[p] {
			b.errs.add("ENTRY_PROCESSES", "%s has no process type %q", path, p)
		}
	}
	for t := range formation {
		if t != "all" && !have[t] {
			b.errs.add("ENTRY_FORMATION", "%s has no process type %q", path, t)
		}
	}
	selected := func(e procfile.Entry) bool {
		return e.Type != "release" && (len(want) == 0 || want[e.Type])
	}
	total := 0
	for _, e := range entries {
		if selected(e) {
			total += procfile.Count(formation, e.Type)
		}
	}
	if total > maxProcesses {
		b.errs.add("ENTRY_PROCFILE", "%s: %d processes, over the limit of %d", path, total, maxProcesses)
		return nil
	}
	if required && total == 0 {
		b.errs.add("ENTRY_PROCFILE", "%s: no process to run (only release, or all excluded by ENTRY_PROCESSES/ENTRY_FORMATION)", path)
	}
	var out []Process
	for _, e := range entries {
		if !selected(e) {
			continue
		}
		argv, group := procfile.Argv(e.Command)
		for i := 1; i <= procfile.Count(formation, e.Type); i++ {
			out = append(out, Process{Name: fmt.Sprintf("%s.%d", e.Type, i), Type: e.Type, Command: e.Command, Argv: argv, Group: group})
		}
	}
	return out
}

// release collects the release steps: ENTRY_RELEASE's lines or, when it is unset, the
// Procfile's release line, and decides on the lock.
func (b *builder) release(entries []procfile.Entry, deps []Dependency, secrets []string) Release {
	s := &b.spec
	r := Release{Skip: s.SkipRelease, From: "ENTRY_RELEASE"}
	for _, line := range strings.Split(s.Release, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			r.Steps = append(r.Steps, release.Step{Name: fmt.Sprintf("release.%d", len(r.Steps)+1), Command: line, Secrets: secrets})
		}
	}
	if len(r.Steps) == 0 {
		r.From = s.Procfile + ", when no command is given"
		for _, e := range entries {
			if e.Type == "release" {
				r.Steps = append(r.Steps, release.Step{Name: "release", Command: e.Command, Secrets: secrets})
			}
		}
	}
	var pg *Dependency
	for i := range deps {
		if deps[i].Kind == Postgres {
			pg = &deps[i]
			break
		}
	}
	lock := false
	switch strings.ToLower(s.ReleaseLock) {
	case "auto":
		lock = pg != nil
	case "true", "1", "yes", "on":
		if pg == nil && !b.errs.has("DATABASE_URL") && !b.errs.has("DATABASE_URL_FILE") {
			b.errs.add("ENTRY_RELEASE_LOCK", "true, but no Postgres dependency is known (set DATABASE_URL or add a postgres:// URL to ENTRY_WAIT)")
		}
		lock = pg != nil
	case "false", "0", "no", "off":
	default:
		b.errs.add("ENTRY_RELEASE_LOCK", "want auto, true or false, got %q", s.ReleaseLock)
	}
	if lock {
		r.Lock = &Lock{Key: s.ReleaseLockKey, Timeout: s.ReleaseLockTimeout, DSN: pg.url, Target: pg.Target}
	}
	return r
}

// parseLevel reads a log level name.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
}

func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or :port, got %q", addr)
	}
	return checkPort(port, true)
}
