package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/entry-dev/entry/internal/redact"
	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is ready when it can connect as the configured user to the
// configured database and run SELECT 1 — what the application itself will do.
//
// The connection string is parsed by pgx, so libpq environment variables
// (PGPASSWORD, PGSSLMODE, …) fill fields the string leaves empty, as they
// would for psycopg in the application.
type Postgres struct {
	cfg    *pgconn.Config
	target string
}

// NewPostgres accepts a postgres:// or postgresql:// URL (other Django
// schemes must be normalised by the caller) or a keyword/value DSN.
func NewPostgres(connString string) (*Postgres, error) {
	if strayAt(connString) {
		return nil, ambiguousURL("postgres")
	}
	if atsInAuthority(connString) > 1 {
		return nil, errors.New("invalid postgres URL: more than one '@' before the host " +
			"(percent-encode '@' in the user name and password as %40)")
	}
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, pgParseError(err)
	}
	for _, h := range pgHosts(cfg) {
		if !strings.HasPrefix(h, "/") && strings.ContainsAny(h, "@#?/ ") {
			// pgx splits the user info at the first '@', Python at the
			// last: the "host" is then the tail of a password.
			return nil, errors.New("invalid postgres URL: the host name contains @ # ? or / " +
				"(percent-encode these characters in the user name and password)")
		}
	}
	return &Postgres{cfg: cfg, target: pgTarget(cfg)}, nil
}

// pgParseError turns a pgx parse error into one that cannot leak the
// password: pgx redacts the connection string on a best-effort basis only,
// and the url.Parse error it wraps quotes the raw string.
func pgParseError(err error) error {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return errors.New("invalid postgres connection string")
	}
	// pgx's message is "cannot parse `<connection string, redacted on a
	// best-effort basis>`: <description> (<wrapped error>)". Only the
	// description is kept, and only when it is one of pgx's fixed texts: the
	// wrapped error of most quotes the value typed for the setting, which may
	// be anything (a password in the wrong place).
	full := pce.Error()
	inner := pce.Unwrap()
	if inner != nil {
		full = strings.TrimSuffix(full, " ("+inner.Error()+")")
	}
	for _, msg := range []string{"failed to parse as URL", "failed to parse as keyword/value"} {
		if strings.HasSuffix(full, "`: "+msg) {
			return errors.New("invalid postgres connection string: " + msg +
				" (percent-encode reserved characters such as / ? # @ : % in the user name and password)")
		}
	}
	for _, msg := range []string{"failed to configure TLS", "failed to read service"} {
		// The wrapped error names a TLS mode or a file, never a value typed in a setting.
		if strings.HasSuffix(full, "`: "+msg) && inner != nil {
			return errors.New("invalid postgres connection string: " + msg + ": " + redact.Clean(oneLine(inner.Error())))
		}
	}
	for _, msg := range []string{"invalid port", "invalid connect_timeout", "invalid sslcertmode", "invalid require_auth",
		"min_protocol_version cannot be greater than max_protocol_version"} {
		if strings.HasSuffix(full, "`: "+msg) {
			return errors.New("invalid postgres connection string: " + msg)
		}
	}
	return errors.New("invalid postgres connection string: a setting has an invalid value (ports, timeouts, sslmode, target_session_attrs…)")
}

func pgHosts(c *pgconn.Config) []string {
	hosts := []string{c.Host}
	for _, f := range c.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	return hosts
}

func pgTarget(c *pgconn.Config) string {
	hosts := []string{pgHostPort(c.Host, c.Port)}
	for _, f := range c.Fallbacks {
		// pgx adds a fallback per TLS mode (sslmode=prefer: TLS, then plain).
		if hp := pgHostPort(f.Host, f.Port); hp != hosts[len(hosts)-1] {
			hosts = append(hosts, hp)
		}
	}
	return fmt.Sprintf("postgres %s@%s/%s", c.User, strings.Join(hosts, ","), c.Database)
}

func pgHostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func (p *Postgres) String() string { return p.target }

// Classify sorts an error from connecting to this server (or from a query on
// such a connection) as Check does: a *PermanentError when waiting will not
// help, a retryable error otherwise. The text of the result is built from
// the error's structure, on one line. The release lock classifies its own
// connection with it.
func (p *Postgres) Classify(err error) error { return p.classify(err) }

// Config returns a copy of the parsed connection settings.
func (p *Postgres) Config() *pgconn.Config { return p.cfg.Copy() }

// Check connects, runs SELECT 1 and disconnects.
func (p *Postgres) Check(ctx context.Context) error {
	conn, err := pgconn.ConnectConfig(ctx, p.cfg)
	if err != nil {
		return p.classify(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		return p.classify(err)
	}
	return nil
}

// classify sorts a pgx error into retry or permanent (see the matrix in
// wait-anchors.md §2.6). A server error decides first: with sslmode=prefer a
// wrong password arrives joined with the TLS refusal of the first attempt.
func (p *Postgres) classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return p.classifyServer(pgErr)
	}
	err = &shownError{msg: pgText(err), err: err}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if s := netState(err); s != "" {
		return retry(s, err)
	}
	if pgconn.Timeout(err) {
		return retry("timeout", err)
	}
	if hint, ok := tlsProblem(err); ok {
		return permanent(err, hint)
	}
	if strings.Contains(err.Error(), "server refused TLS connection") {
		return permanent(err, "the server does not offer TLS but the connection string requires it (sslmode=require or stricter): enable TLS on the server or use sslmode=prefer or disable")
	}
	return err
}

func (p *Postgres) classifyServer(e *pgconn.PgError) error {
	db, user := p.cfg.Database, p.cfg.User
	state := redact.Clean(e.Code + " " + oneLine(e.Message))
	shown := *e // the server's text, on one line and without control characters
	shown.Message, shown.Severity = redact.Clean(oneLine(e.Message)), redact.Clean(e.Severity)
	e = &shown
	switch e.Code {
	case "57P03":
		if strings.Contains(e.Detail, "Hot standby mode is disabled") {
			// A standby with hot_standby=off never accepts connections, but it
			// may be promoted: keep waiting, and say what it is.
			return retry("57P03 standby (hot_standby=off): not a primary", e)
		}
		return retry(state, e)
	case "28P01":
		return permanent(e, fmt.Sprintf("authentication failed: wrong password or user name %q; "+
			"note that POSTGRES_PASSWORD and POSTGRES_USER only take effect when the postgres image initialises "+
			"an empty data volume, so changing them later does not change the stored password", user))
	case "28000":
		return permanent(e, "the server refused this role, database or client address: check pg_hba.conf "+
			"(and its TLS requirements, sslmode) and that the role exists")
	case "3D000":
		return permanent(e, fmt.Sprintf("database %q does not exist: create it or fix the database name in the URL; "+
			"POSTGRES_DB only creates it when the postgres image initialises an empty data volume", db))
	case "42704":
		return permanent(e, "the connection string carries a parameter PostgreSQL does not know "+
			"(Django options such as currentSchema or conn_max_age are not libpq parameters): remove it")
	case "42501":
		return permanent(e, fmt.Sprintf("role %q may not connect to database %q: GRANT CONNECT ON DATABASE", user, db))
	case "53300":
		return retry("53300 too many clients", e)
	}
	switch e.Code[:min(2, len(e.Code))] {
	case "08", "40", "53", "55", "57", "58", "XX":
		// connection exceptions, resource shortages, operator intervention
		// (shutdown, recovery), system and internal errors: transient.
		return retry(state, e)
	}
	return permanent(e, "the server rejected the connection; this will not change by waiting")
}
