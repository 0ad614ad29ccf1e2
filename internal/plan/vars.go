package plan

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Spec is every ENTRY_* variable, typed. The env tag names the variable, default is the value
// when it is unset or empty, desc is its line in `entry help`. load fills it and Help prints it,
// so the parser and the help cannot drift; shown overrides the printed default where the
// default is a rule rather than a value.
type Spec struct {
	Wait             string        `env:"ENTRY_WAIT" desc:"dependency URLs, comma or whitespace separated (postgres, amqp, redis, http(s), tcp://host:port); also ENTRY_WAIT_FILE"`
	Discover         bool          `env:"ENTRY_DISCOVER" default:"true" desc:"also wait for DATABASE_URL (else POSTGRES_*), CELERY_BROKER_URL and REDIS_URL"`
	SkipWait         bool          `env:"ENTRY_SKIP_WAIT" default:"false" desc:"skip the wait phase"`
	WaitTimeout      time.Duration `env:"ENTRY_WAIT_TIMEOUT" default:"120s" desc:"overall deadline of the wait phase (0 waits forever)"`
	AttemptTimeout   time.Duration `env:"ENTRY_ATTEMPT_TIMEOUT" default:"5s" desc:"bound on one probe of one dependency"`
	BackoffInitial   time.Duration `env:"ENTRY_BACKOFF_INITIAL" default:"100ms" desc:"delay after the second not-yet answer or timeout in a row; doubles each time (a refused port is probed every 20 ms)"`
	BackoffMax       time.Duration `env:"ENTRY_BACKOFF_MAX" default:"1s" desc:"cap of the delay between probes (jittered by 20%)"`
	ProgressInterval time.Duration `env:"ENTRY_PROGRESS_INTERVAL" default:"10s" desc:"how often a dependency that is still not ready is reported"`
	HTTPCAFile       string        `env:"ENTRY_HTTP_CA_FILE" desc:"PEM file of CAs trusted by https:// checks (default: system roots)"`
	HTTPInsecure     bool          `env:"ENTRY_HTTP_INSECURE" default:"false" desc:"skip TLS verification in https:// checks"`

	Release            string        `env:"ENTRY_RELEASE" desc:"release steps run once before the processes start, one per line (e.g. python manage.py migrate --noinput)"`
	ReleaseLock        string        `env:"ENTRY_RELEASE_LOCK" default:"auto" desc:"auto, true or false: run the release steps under a Postgres advisory lock (auto: when a Postgres dependency is known)"`
	ReleaseLockTimeout time.Duration `env:"ENTRY_RELEASE_LOCK_TIMEOUT" default:"15m" desc:"how long a replica waits for another one's release to finish"`
	ReleaseLockKey     int64         `env:"ENTRY_RELEASE_LOCK_KEY" default:"7261645163206162" desc:"the advisory lock key; give unrelated apps sharing a database different keys"`
	SkipRelease        bool          `env:"ENTRY_SKIP_RELEASE" default:"false" desc:"skip the release steps (for ad-hoc runs: docker compose run web python manage.py shell)"`
	WaitCommand        string        `env:"ENTRY_WAIT_COMMAND" desc:"command that must exit 0 before the processes start, retried with backoff within ENTRY_WAIT_TIMEOUT, never while another replica holds the release lock (e.g. python manage.py migrate --check)"`
	Singleton          string        `env:"ENTRY_SINGLETON" desc:"Procfile types that run in one replica at a time, under a Postgres advisory lock (e.g. beat); the others hold them in standby"`

	Procfile      string        `env:"ENTRY_PROCFILE" default:"Procfile" desc:"Procfile used when no command is given"`
	Processes     string        `env:"ENTRY_PROCESSES" shown:"all but release" desc:"process types to run, comma separated"`
	Formation     string        `env:"ENTRY_FORMATION" shown:"1 each" desc:"instances per type, e.g. web=1,worker=2 (all=N sets the default)"`
	Restart       string        `env:"ENTRY_RESTART" default:"on-failure" desc:"Procfile mode: never, on-failure or always"`
	RestartLimit  int           `env:"ENTRY_RESTART_LIMIT" default:"5" desc:"crash loop: more restarts than this within ENTRY_RESTART_WINDOW stops entry"`
	RestartWindow time.Duration `env:"ENTRY_RESTART_WINDOW" default:"60s" desc:"window of the crash-loop limit"`
	StopTimeout   time.Duration `env:"ENTRY_STOP_TIMEOUT" default:"8s" desc:"grace between the stop signal and SIGKILL (fits docker stop's 10s); per process type ENTRY_STOP_TIMEOUT_<TYPE>"`
	StopSignal    string        `env:"ENTRY_STOP_SIGNAL" default:"TERM" desc:"stop signal; per process type ENTRY_STOP_SIGNAL_<TYPE> (nginx: QUIT, uwsgi: INT)"`
	ShutdownDelay time.Duration `env:"ENTRY_SHUTDOWN_DELAY" default:"0s" desc:"on SIGTERM, /readyz turns 503 at once and the stop signals go out only after this delay (load balancers stop sending first); a second SIGTERM or SIGINT cuts it short"`
	StopBudget    time.Duration `env:"ENTRY_STOP_BUDGET" default:"0s" shown:"-" desc:"the orchestrator's whole stop budget (docker stop 10s, Kubernetes 30s): entry warns at start when the shutdown delay plus the longest grace exceeds it"`

	HealthAddr string `env:"ENTRY_HEALTH_ADDR" desc:"address of the optional HTTP health listener (/livez, /readyz, /status), e.g. :8081"`
	LogFormat  string `env:"ENTRY_LOG_FORMAT" default:"text" desc:"text or json"`
	LogLevel   string `env:"ENTRY_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`

	User          string        `env:"ENTRY_USER" desc:"started as root: become this user (name, uid or uid:gid) at start, for the wait, the release and every process"`
	Chown         string        `env:"ENTRY_CHOWN" desc:"directories (comma separated) given to ENTRY_USER first, not recursively, e.g. /app/media"`
	Sentry        bool          `env:"ENTRY_SENTRY" default:"true" desc:"false turns the Sentry reports off"`
	SentryDSN     string        `env:"ENTRY_SENTRY_DSN" shown:"SENTRY_DSN" desc:"a Sentry DSN for entry's reports only"`
	SentryTimeout time.Duration `env:"ENTRY_SENTRY_TIMEOUT" default:"2s" desc:"bound on sending the reports; at exit entry waits at most this long for them"`
}

// Variables that are not fields of Spec: read by name, listed by Help.
const (
	waitFileVar    = "ENTRY_WAIT_FILE"
	stopSignalPfx  = "ENTRY_STOP_SIGNAL_"
	stopTimeoutPfx = "ENTRY_STOP_TIMEOUT_"
)

// appVars are the app's own variables entry reads when ENTRY_DISCOVER is on, and the
// variables with a per-type or _FILE form. Help lists them after Spec's.
var appVars = [][3]string{
	{stopSignalPfx + "<TYPE>", "ENTRY_STOP_SIGNAL", "stop signal of one Procfile process type, e.g. ENTRY_STOP_SIGNAL_NGINX=QUIT"},
	{stopTimeoutPfx + "<TYPE>", "ENTRY_STOP_TIMEOUT", "grace of one Procfile process type, e.g. ENTRY_STOP_TIMEOUT_WORKER=60s for celery's warm shutdown; every type still stops in parallel"},
	{waitFileVar, "-", "file holding ENTRY_WAIT (a Docker/Kubernetes secret)"},
	{"DATABASE_URL", "-", "Django database URL (postgres, postgresql, pgsql, postgis...); also DATABASE_URL_FILE"},
	{"POSTGRES_HOST", "postgres", "used with POSTGRES_PORT (5432), _USER (postgres), _PASSWORD, _DB (= user) when DATABASE_URL is unset; _PASSWORD/_USER/_DB also as _FILE"},
	{"CELERY_BROKER_URL", "-", "Celery broker (amqp, amqps, pyamqp, redis, rediss); also CELERY_BROKER_URL_FILE"},
	{"REDIS_URL", "-", "Redis URL (redis, rediss); also REDIS_URL_FILE"},
	{"SENTRY_DSN", "-", "report entry's incidents (dependency refused or absent, failed release, lost lock, crash loop, process killed) to this Sentry project"},
	{"SENTRY_RELEASE, SENTRY_ENVIRONMENT", "-", "release and environment of the reports, as the app's SDK uses them"},
}

// maxValue bounds any single variable's value but ENTRY_RELEASE's and ENTRY_WAIT's (lists).
const (
	maxValue     = 4 << 10
	maxListValue = 64 << 10
)

type field struct {
	name, def, shown, desc string
	v                      reflect.Value
}

func fields(s *Spec) []field {
	rv := reflect.ValueOf(s).Elem()
	rt := rv.Type()
	out := make([]field, rt.NumField())
	for i := range out {
		f := rt.Field(i)
		out[i] = field{name: f.Tag.Get("env"), def: f.Tag.Get("default"), shown: f.Tag.Get("shown"), desc: f.Tag.Get("desc"), v: rv.Field(i)}
	}
	return out
}

// load fills a Spec from env, reporting every bad variable rather than the first.
func load(env environment, errs *Errors) Spec {
	var s Spec
	for _, f := range fields(&s) {
		raw, fromEnv := env.Get(f.name), true
		if raw == "" {
			raw, fromEnv = f.def, false
		}
		limit := maxValue
		if f.name == "ENTRY_WAIT" || f.name == "ENTRY_RELEASE" {
			limit = maxListValue
		}
		if fromEnv && len(raw) > limit {
			errs.add(f.name, "%s", tooLong(len(raw), limit))
			continue
		}
		if err := set(f.v, raw); err != nil {
			// The value is quoted only for types that cannot hold a secret.
			errs.add(f.name, "%v", err)
		}
	}
	return s
}

func set(v reflect.Value, raw string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", raw)
		}
		v.SetBool(b)
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 30s, 2m)", raw)
		}
		v.SetInt(int64(d))
	case int, int64:
		n, err := strconv.ParseInt(raw, 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", raw)
		}
		v.SetInt(n)
	default:
		// Only a new Spec field of a type not handled here; TestBuildDefaults meets it.
		return fmt.Errorf("entry cannot read a %s variable", v.Type())
	}
	return nil
}

// known reports whether name is a variable entry reads, so that a typo such as
// ENTRY_WAIT_TIMOUT is warned about instead of ignored.
func known(name string) bool {
	if name == waitFileVar || strings.HasPrefix(name, stopSignalPfx) || strings.HasPrefix(name, stopTimeoutPfx) {
		return true
	}
	var s Spec
	for _, f := range fields(&s) {
		if f.name == name {
			return true
		}
	}
	return false
}

// Help writes every variable with its default and meaning, from the same definitions load
// reads.
func Help(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var s Spec
	for _, f := range fields(&s) {
		def := f.def
		if f.shown != "" {
			def = f.shown
		}
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.name, def, f.desc)
	}
	for _, v := range appVars {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v[0], v[1], v[2])
	}
	tw.Flush()
}
