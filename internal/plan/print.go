package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/entry-dev/entry/supervise"
)

// Print writes the plan as `entry config` shows it: what each phase will do, secrets
// redacted. It prints the plan the run reads, not a second reading of the environment.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintln(w, "dependencies:")
	if len(p.Dependencies) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range p.Dependencies {
		fmt.Fprintf(tw, "  %s\tfrom %s\n", d.Target, d.Source)
	}
	tw.Flush()
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	o := p.Wait.Options
	wait := fmt.Sprintf("timeout %s, attempt timeout %s, backoff %s..%s", o.Timeout, o.AttemptTimeout, o.Backoff.Initial, o.Backoff.Max)
	if o.Timeout == 0 {
		wait = strings.Replace(wait, "timeout 0s", "no timeout", 1)
	}
	if p.Wait.Skip {
		wait = "skipped (ENTRY_SKIP_WAIT)"
	}
	fmt.Fprintf(w, "wait: %s\n", wait)

	fmt.Fprintln(w, "release:")
	r := p.Release
	switch {
	case len(r.Steps) == 0:
		fmt.Fprintln(w, "  (none)")
	case r.Skip:
		fmt.Fprintln(w, "  skipped (ENTRY_SKIP_RELEASE)")
	default:
		for _, s := range r.Steps {
			fmt.Fprintf(w, "  %s\t(from %s)\n", escape(redact.Command(s.Command, s.Secrets...), 0), escape(r.From, 0))
		}
		if r.Lock != nil {
			fmt.Fprintf(w, "  lock: advisory lock %d on %s, wait at most %s\n", r.Lock.Key, r.Lock.Target, r.Lock.Timeout)
		} else {
			fmt.Fprintln(w, "  lock: off (no Postgres dependency, or ENTRY_RELEASE_LOCK=false)")
		}
	}

	if c := p.WaitCommand; c != nil {
		watch := "no release lock to watch (no Postgres dependency)"
		if c.Lock != nil {
			watch = fmt.Sprintf("never while another replica holds advisory lock %d on %s", c.Lock.Key, c.Lock.Target)
		}
		timeout := "no timeout"
		if c.Timeout > 0 {
			timeout = "within " + c.Timeout.String()
		}
		fmt.Fprintf(w, "wait command: %s\n  until it exits 0, %s; %s\n", escape(redact.Command(c.Command, c.Secrets...), 0), timeout, watch)
	}

	fmt.Fprintln(w, "processes:")
	if len(p.Processes) == 0 {
		fmt.Fprintf(w, "  (from the command line; %s has none)\n", escape(p.Procfile, 0))
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, pr := range p.Processes {
		fmt.Fprintf(tw, "  %s\t%s\tstop %s, SIGKILL after %s\n", pr.Name, escape(redact.Command(pr.Command, p.Secrets...), 0), supervise.SignalName(pr.Stop), pr.StopTimeout)
	}
	tw.Flush()
	if p.Singleton != nil {
		fmt.Fprintf(w, "singleton: %s\n", escape(p.Singleton.String(), 0))
	}
	fmt.Fprintf(w, "stop: %s, then SIGKILL after %s\n", supervise.SignalName(p.Stop.Signal), p.Stop.Timeout)
	delay := "none"
	if p.Stop.Delay > 0 {
		delay = fmt.Sprintf("%s: on SIGTERM /readyz turns 503 at once, the stop signals go out after it", p.Stop.Delay)
	}
	fmt.Fprintf(w, "  shutdown delay: %s\n", delay)
	budget := "unset (ENTRY_STOP_BUDGET)"
	if p.Stop.Budget > 0 {
		budget = p.Stop.Budget.String()
	}
	fmt.Fprintf(w, "  stop budget: %s; the stop takes at most the delay plus the longest grace, %s\n", budget, p.Stop.Delay+p.longestGrace())
	for _, warn := range p.Stop.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	fmt.Fprintf(w, "restart: %s, crash loop after %d restarts within %s\n", p.Restart.Policy, p.Restart.Limit, p.Restart.Window)
	health := "off"
	if p.HealthAddr != "" {
		health = escape(p.HealthAddr, 0) + " (/livez, /readyz, /status)"
	}
	fmt.Fprintf(w, "health: %s\n", health)
	fmt.Fprintf(w, "log: %s, level %s\n", p.Log.Format, strings.ToLower(p.Log.Level.String()))
	user := "entry's own"
	if p.User != nil {
		user = escape(p.User.String(), 0)
		if len(p.Chown) > 0 {
			user += ", given " + escape(strings.Join(p.Chown, ", "), 0)
		}
	}
	fmt.Fprintf(w, "user: %s\n", user)
	if s := p.Sentry; s != nil {
		o := s.Options
		fmt.Fprintf(w, "sentry: %s (from %s), release %q, environment %q, timeout %s\n", escape(s.host(), 0), s.From, escape(o.Release, 0), escape(o.Environment, 0), o.Timeout)
	} else {
		fmt.Fprintln(w, "sentry: off")
	}
}
