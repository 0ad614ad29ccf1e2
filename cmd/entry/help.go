package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/entry-dev/entry/procfile"
	"github.com/entry-dev/entry/supervise"
	"github.com/kelseyhightower/envconfig"
)

const helpTemplate = `{{range .}}{{usage_key .}}	{{if usage_default .}}{{usage_default .}}{{else}}-{{end}}	{{usage_description .}}
{{end}}`

// appVars are the app's own variables entry reads when ENTRY_DISCOVER is on.
var appVars = [][3]string{
	{"ENTRY_STOP_SIGNAL_<TYPE>", "ENTRY_STOP_SIGNAL", "stop signal of one Procfile process type, e.g. ENTRY_STOP_SIGNAL_NGINX=QUIT"},
	{"ENTRY_WAIT_FILE", "-", "file holding ENTRY_WAIT (a Docker/Kubernetes secret)"},
	{"DATABASE_URL", "-", "Django database URL (postgres, postgresql, pgsql, postgis...); also DATABASE_URL_FILE"},
	{"POSTGRES_HOST", "postgres", "used with POSTGRES_PORT (5432), _USER (postgres), _PASSWORD, _DB (= user) when DATABASE_URL is unset; _PASSWORD/_USER/_DB also as _FILE"},
	{"CELERY_BROKER_URL", "-", "Celery broker (amqp, amqps, pyamqp, redis, rediss); also CELERY_BROKER_URL_FILE"},
	{"REDIS_URL", "-", "Redis URL (redis, rediss); also REDIS_URL_FILE"},
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprint(w, `
Exit status: the main process's own status (128+N if signal N killed it); 126/127 if the
command cannot be run / is not found; a failed release step's status; 64 bad arguments;
78 bad environment; 69 a dependency was not ready in time or refused entry for good.

Environment (default in the second column):

`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var s spec
	// helpTemplate is a constant and spec a struct: Usagef cannot fail here.
	_ = envconfig.Usagef("entry", &s, tw, helpTemplate)
	for _, v := range append(appVars, opsVars...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v[0], v[1], v[2])
	}
	tw.Flush()
}

func printPlan(w io.Writer, c *config, procs []procfile.Entry, getenv func(string) string) error {
	fmt.Fprintln(w, "dependencies:")
	if len(c.deps) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range c.deps {
		fmt.Fprintf(tw, "  %s\tfrom %s\n", d.target, d.source)
	}
	tw.Flush()
	for _, n := range c.notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	wait := fmt.Sprintf("timeout %s, attempt timeout %s, backoff %s..%s", c.WaitTimeout, c.AttemptTimeout, c.BackoffInitial, c.BackoffMax)
	if c.WaitTimeout == 0 {
		wait = strings.Replace(wait, "timeout 0s", "no timeout", 1)
	}
	if c.SkipWait {
		wait = "skipped (ENTRY_SKIP_WAIT)"
	}
	fmt.Fprintf(w, "wait: %s\n", wait)

	fmt.Fprintln(w, "release:")
	steps, from := c.releaseSteps(procs)
	switch {
	case len(steps) == 0:
		fmt.Fprintln(w, "  (none)")
	case c.SkipRelease:
		fmt.Fprintln(w, "  skipped (ENTRY_SKIP_RELEASE)")
	default:
		for _, s := range steps {
			fmt.Fprintf(w, "  %s\t(from %s)\n", redact.Command(s.Command), from)
		}
		if c.lock {
			fmt.Fprintf(w, "  lock: advisory lock %d on %s, wait at most %s\n", c.ReleaseLockKey, c.postgres().target, c.ReleaseLockTimeout)
		} else {
			fmt.Fprintln(w, "  lock: off (no Postgres dependency, or ENTRY_RELEASE_LOCK=false)")
		}
	}

	fmt.Fprintln(w, "processes:")
	inst := c.selected(procs)
	if len(inst) == 0 {
		fmt.Fprintf(w, "  (from the command line; %s has none)\n", c.Procfile)
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, in := range inst {
		sig, err := c.stopSignal(getenv, in.typ)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\tstop %s\n", in.name, redact.Command(in.command), supervise.SignalName(sig))
	}
	tw.Flush()
	fmt.Fprintf(w, "stop: %s, then SIGKILL after %s\n", supervise.SignalName(c.stop), c.StopTimeout)
	fmt.Fprintf(w, "restart: %s, crash loop after %d restarts within %s\n", c.Restart, c.RestartLimit, c.RestartWindow)
	health := "off"
	if c.HealthAddr != "" {
		health = c.HealthAddr + " (/livez, /readyz, /status)"
	}
	fmt.Fprintf(w, "health: %s\n", health)
	fmt.Fprintf(w, "log: %s, level %s\n", c.LogFormat, c.LogLevel)
	return nil
}
