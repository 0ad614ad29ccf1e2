package readiness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/throwaway"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPostgresServer(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pg-pw"
	pg := throwaway.NewPostgres(t, throwaway.PostgresOptions{
		Password:  password,
		Databases: []string{"app"},
		SQL: []string{
			"CREATE ROLE app LOGIN PASSWORD 'app-Pw-42'",
			"CREATE ROLE blocked LOGIN PASSWORD 'blocked-Pw-42'",
			"CREATE ROLE noconnect LOGIN PASSWORD 'noconn-Pw-42'",
			"REVOKE CONNECT ON DATABASE app FROM PUBLIC",
			"GRANT CONNECT ON DATABASE app TO app",
		},
		HBA: []string{"host all blocked 127.0.0.1/32 reject"},
	})
	mustPG := func(url string) *Postgres {
		t.Helper()
		c, err := NewPostgres(url)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	ok := t.Run("started after Wait begins", func(t *testing.T) {
		c := mustPG(pg.URL("app", "app-Pw-42", "app"))
		if got, want := c.String(), "postgres app@127.0.0.1:"; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "/app") {
			t.Errorf("String() = %q", got)
		}
		rec := &recorder{}
		wait := waitAsync(c, fastOptions(rec, 30*time.Second))
		time.Sleep(200 * time.Millisecond)
		pg.Start()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if st := rec.states(); len(st) == 0 || st[0] != "connection refused" {
			t.Errorf("states = %q, want connection refused first", st)
		}
		t.Logf("states: %q", rec.states())
	})
	if !ok {
		t.FailNow()
	}

	t.Run("wrong password", func(t *testing.T) {
		c := mustPG(pg.URL("app", "wrong-Pw-99", "app"))
		pe := permanentWithin(t, c, 2*time.Second, "authentication", "wrong-Pw-99", "app-Pw-42")
		if !strings.Contains(pe.Hint, "POSTGRES_PASSWORD") {
			t.Errorf("hint lacks the first-initdb note: %q", pe.Hint)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		permanentWithin(t, mustPG(pg.URL("nobody", "whatever-Pw", "app")), 2*time.Second, "authentication", "whatever-Pw")
	})
	t.Run("missing database", func(t *testing.T) {
		permanentWithin(t, mustPG(pg.URL("app", "app-Pw-42", "nodb")), 2*time.Second, `database "nodb" does not exist`, "app-Pw-42")
	})
	t.Run("pg_hba reject", func(t *testing.T) {
		permanentWithin(t, mustPG(pg.URL("blocked", "blocked-Pw-42", "app")), 2*time.Second, "pg_hba.conf", "blocked-Pw-42")
	})
	t.Run("no connect privilege", func(t *testing.T) {
		permanentWithin(t, mustPG(pg.URL("noconnect", "noconn-Pw-42", "app")), 2*time.Second, "CONNECT", "noconn-Pw-42")
	})
	t.Run("unknown startup parameter", func(t *testing.T) {
		permanentWithin(t, mustPG(pg.URL("app", "app-Pw-42", "app")+"&currentSchema=x"), 2*time.Second, "currentSchema", "app-Pw-42")
	})
	t.Run("TLS required but not offered", func(t *testing.T) {
		url := strings.Replace(pg.URL("app", "app-Pw-42", "app"), "sslmode=disable", "sslmode=require", 1)
		permanentWithin(t, mustPG(url), 2*time.Second, "TLS", "app-Pw-42")
	})
	t.Run("sslmode=prefer falls back and reports the password", func(t *testing.T) {
		url := strings.Replace(pg.URL("app", "bad-Pw-77", "app"), "sslmode=disable", "sslmode=prefer", 1)
		permanentWithin(t, mustPG(url), 2*time.Second, "authentication", "bad-Pw-77")
	})
	t.Run("crash recovery is waited through", func(t *testing.T) {
		c := mustPG(pg.URL("app", "app-Pw-42", "app"))
		pg.Crash()
		rec := &recorder{}
		opt := fastOptions(rec, 30*time.Second)
		opt.Backoff = Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Factor: 2}
		wait := waitAsync(c, opt)
		time.Sleep(100 * time.Millisecond)
		pg.Start()
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		t.Logf("states: %q", rec.states())
	})
	t.Run("keyword/value DSN", func(t *testing.T) {
		c := mustPG("host=127.0.0.1 port=" + strings.Split(pg.Addr(), ":")[1] + " user=app password='app-Pw-42' dbname=app sslmode=disable")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
		noSecrets(t, c.String(), "app-Pw-42")
	})
}

func TestPostgresClassify(t *testing.T) {
	p, err := NewPostgres("postgres://app:pw@db:5432/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code, msg, detail string
		permanent         bool
		state             string
	}{
		{"57P03", "the database system is starting up", "", false, "57P03 the database system is starting up"},
		{"57P03", "the database system is not yet accepting connections", "Consistent recovery state has not been yet reached.", false, "57P03 the database system is not yet accepting connections"},
		{"57P03", "the database system is not accepting connections", "Hot standby mode is disabled.", false, "57P03 standby (hot_standby=off): not a primary"},
		{"53300", "sorry, too many clients already", "", false, "53300 too many clients"},
		{"57P01", "terminating connection due to administrator command", "", false, "57P01 terminating connection due to administrator command"},
		{"28P01", "password authentication failed for user \"app\"", "", true, ""},
		{"28000", "pg_hba.conf rejects connection", "", true, ""},
		{"3D000", "database \"app\" does not exist", "", true, ""},
		{"42704", "unrecognized configuration parameter \"currentSchema\"", "", true, ""},
		{"42501", "permission denied for database \"app\"", "", true, ""},
		{"0A000", "unsupported frontend protocol", "", true, ""},
	} {
		got := p.classifyServer(&pgconn.PgError{Severity: "FATAL", Code: tc.code, Message: tc.msg, Detail: tc.detail})
		var pe *PermanentError
		if errors.As(got, &pe) != tc.permanent {
			t.Errorf("%s %s: permanent = %v, want %v", tc.code, tc.detail, !tc.permanent, tc.permanent)
		}
		if !tc.permanent && State(got) != tc.state {
			t.Errorf("%s: state %q, want %q", tc.code, State(got), tc.state)
		}
	}
}

func TestNewPostgres(t *testing.T) {
	for _, tc := range []struct {
		in      string
		target  string
		wantErr string
	}{
		{"postgres://app:pw@db:5432/app", "postgres app@db:5432/app", ""},
		{"postgresql://app:pw@db/app?sslmode=disable", "postgres app@db:5432/app", ""},
		{"postgres://app:pw@[::1]:6543/app", "postgres app@[::1]:6543/app", ""},
		{"postgres://app:pw@db1,db2:5433/app", "postgres app@db1:5432,db2:5433/app", ""},
		{"host=db user=app password=secret dbname=app", "postgres app@db:5432/app", ""},
		{"pgsql://app:pw@db/app", "", "invalid postgres connection string"},
		{"postgres://app:pa55/word@db:5432/app", "", "'@' after the host"},
		{"postgres://app:p@ss@db:5432/app", "", "more than one '@'"},
		{"postgres://app:Hunter2Secret@db:99999/app", "", "invalid postgres connection string"},
		{"postgres://app:Hunter2Secret@db/app?sslmode=bogus", "", "sslmode is invalid"},
		{"postgres://app:Hunter2Secret@db/app?connect_timeout=Hunter2Secret", "", "invalid connect_timeout"},
	} {
		c, err := NewPostgres(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewPostgres(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			} else {
				noSecrets(t, err.Error(), "pa55/word", "pa55", "Hunter2Secret")
			}
			continue
		}
		if err != nil {
			t.Errorf("NewPostgres(%q): %v", tc.in, err)
			continue
		}
		if c.String() != tc.target {
			t.Errorf("NewPostgres(%q).String() = %q, want %q", tc.in, c.String(), tc.target)
		}
	}
}
