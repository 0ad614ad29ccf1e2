package plan

import (
	"fmt"
	"net"
	"net/url"

	"github.com/entry-dev/entry/internal/privilege"
	"github.com/entry-dev/entry/report"
)

// Sentry is where entry reports its incidents.
type Sentry struct {
	Options report.Options // ServerName, Secrets and Log are the caller's to set
	From    string         // the variable the DSN came from
}

// accounts are the files ENTRY_USER is looked up in; tests give their own.
type accounts struct{ passwd, group string }

// operations reads ENTRY_USER, ENTRY_CHOWN and the Sentry variables. Whether the user may be
// taken at all depends on who runs entry, which the caller checks (privilege.Allowed).
func (b *builder) operations(p *Plan, acc accounts) {
	s := &b.spec
	p.Chown = splitList(s.Chown)
	switch {
	case s.User == "" && len(p.Chown) > 0:
		b.errs.add("ENTRY_CHOWN", "is set but ENTRY_USER is not: whom to give the directories to?")
	case s.User != "":
		u, err := privilege.Resolve(s.User, acc.passwd, acc.group)
		if err != nil {
			b.errs.add("ENTRY_USER", "%v", err)
		} else {
			p.User = &u
		}
		if err := privilege.Check(p.Chown); err != nil {
			b.errs.add("ENTRY_CHOWN", "%v", err)
		}
	}

	if !s.Sentry {
		return
	}
	dsn, from := s.SentryDSN, "ENTRY_SENTRY_DSN"
	if dsn == "" {
		from = "SENTRY_DSN"
		var ok bool
		if dsn, ok = b.value(from, maxValue); !ok {
			return
		}
	}
	if dsn == "" {
		return
	}
	if err := report.CheckDSN(dsn); err != nil {
		b.errs.add(from, "%v", err)
		return
	}
	release, _ := b.value("SENTRY_RELEASE", maxValue)
	environment, _ := b.value("SENTRY_ENVIRONMENT", maxValue)
	p.Sentry = &Sentry{From: from, Options: report.Options{
		DSN:         dsn,
		Release:     release,
		Environment: environment,
		Timeout:     s.SentryTimeout,
	}}
}

// sentryHost is the DSN as `entry config` shows it: its host only, since its user part is
// the project's key.
func (s *Sentry) host() string {
	if u, err := url.Parse(s.Options.DSN); err == nil {
		return u.Host
	}
	return ""
}

// HealthTarget is where `entry health` reaches this container's entry: ENTRY_HEALTH_ADDR
// from environ, a wildcard host (":8081", "0.0.0.0:8081", "[::]:8081") meaning loopback.
func HealthTarget(environ []string) (string, error) {
	addr := newEnv(environ).Get("ENTRY_HEALTH_ADDR")
	if addr == "" {
		return "", &Error{Var: "ENTRY_HEALTH_ADDR", Err: fmt.Errorf("not set: entry health asks the listener it names")}
	}
	if err := checkListenAddr(addr); err != nil {
		return "", &Error{Var: "ENTRY_HEALTH_ADDR", Err: err}
	}
	host, port, _ := net.SplitHostPort(addr)
	if port == "0" {
		return "", &Error{Var: "ENTRY_HEALTH_ADDR", Err: fmt.Errorf("port 0 is chosen at random: entry health cannot find it")}
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
