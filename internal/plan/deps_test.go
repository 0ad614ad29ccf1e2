package plan

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseDependency(t *testing.T) {
	tests := []struct {
		in     string
		kind   Kind
		url    string
		target string
	}{
		{"postgres://app:pw@db:5432/app", Postgres,
			"host='db' port=5432 user='app' password='pw' dbname='app'", "postgres://app@db:5432/app"},
		{"pgsql://app:pw@db/app", Postgres,
			"host='db' port=5432 user='app' password='pw' dbname='app'", "postgres://app@db:5432/app"},
		{"postgis://app:pw@db/geo", Postgres,
			"host='db' port=5432 user='app' password='pw' dbname='geo'", "postgres://app@db:5432/geo"},
		// An unencoded '@' in the password: Python's urlsplit takes the rightmost '@'.
		{"postgres://u:p@ss@db:5432/app", Postgres,
			"host='db' port=5432 user='u' password='p@ss' dbname='app'", "postgres://u@db:5432/app"},
		{"postgres://u:it's%20me@db/app", Postgres,
			`host='db' port=5432 user='u' password='it\'s me' dbname='app'`, "postgres://u@db:5432/app"},
		// Django-only parameters are dropped, libpq ones kept, currentSchema translated.
		{"postgres://u:p@db/app?conn_max_age=600&sslmode=require&currentSchema=s1", Postgres,
			"host='db' port=5432 user='u' password='p' dbname='app' options='-c search_path=s1' sslmode='require'", "postgres://u@db:5432/app"},
		{"postgresql://u@%2Fvar%2Frun%2Fpostgresql/app", Postgres,
			"host='/var/run/postgresql' port=5432 user='u' dbname='app'", "postgres://u@/var/run/postgresql:5432/app"},
		{"postgres://u:p@[::1]:6543/app", Postgres,
			"host='::1' port=6543 user='u' password='p' dbname='app'", "postgres://u@[::1]:6543/app"},
		{"pyamqp://guest:guest@rabbit//", AMQP, "amqp://guest:guest@rabbit:5672//", "amqp://guest@rabbit:5672//"},
		{"amqp://u:p@ss@rabbit:5673/vh?heartbeat=30", AMQP, "amqp://u:p%40ss@rabbit:5673/vh", "amqp://u@rabbit:5673/vh"},
		{"amqps://u:p@rabbit", AMQP, "amqps://u:p@rabbit:5671/", "amqps://u@rabbit:5671/"},
		{"redis://:secret@redis:6379/1", Redis, "redis://:secret@redis:6379/1", "redis://redis:6379/1"},
		{"rediss://default:pw@cache", Redis, "rediss://default:pw@cache:6379", "rediss://default@cache:6379"},
		{"http://elastic:changeme@es:9200/_cluster/health?wait_for_status=yellow&timeout=5s", HTTP,
			"http://elastic:changeme@es:9200/_cluster/health?wait_for_status=yellow&timeout=5s", "http://elastic@es:9200/_cluster/health"},
		{"tcp://[::1]:11211", TCP, "[::1]:11211", "tcp://[::1]:11211"},
	}
	for _, tt := range tests {
		d, err := parseDependency("TEST", tt.in)
		if err != nil {
			t.Errorf("parseDependency(%q): %v", tt.in, err)
			continue
		}
		if d.kind != tt.kind || d.url != tt.url || d.shown != tt.target {
			t.Errorf("parseDependency(%q)\n got %s %q %q\nwant %s %q %q", tt.in, d.kind, d.url, d.shown, tt.kind, tt.url, tt.target)
		}
	}
}

func TestParseDependencyErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mysql://u:p@db/app", "unsupported scheme"},
		{"db:5432", "not a URL"},
		{"postgres://u:p@db:99999/app", "invalid port"},
		{"postgres://u:p@db:x/app", "invalid port"},
		{"postgres://u:p@:5432/app", "empty host"},
		{"tcp://db", "needs a port"},
		{"redis://redis/x", "invalid database number"},
		{"postgres://u:se/cret@db/app", "percent-encode"},
		{"postgres://[::1/app", "unclosed"},
		{"amqp://u:p@rabbit:/", "empty port"},
	}
	for _, tt := range tests {
		_, err := parseDependency("TEST", tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseDependency(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "cret") || strings.Contains(err.Error(), ":p@")) {
			t.Errorf("parseDependency(%q) error leaks the password: %v", tt.in, err)
		}
	}
}

// FuzzParseDependency checks that no input panics, and that a password never shows in what
// entry prints: the target or the error.
func FuzzParseDependency(f *testing.F) {
	for _, s := range []string{"postgres://u:%s@db:5432/app", "pgsql://u:%s@db/app?sslmode=disable",
		"pyamqp://u:%s@rabbit//", "redis://:%s@redis/0", "http://u:%s@es:9200/", "tcp://h:1", "%s"} {
		f.Add(s, "pa:ss@word")
	}
	f.Fuzz(func(t *testing.T, format, pw string) {
		pw = "Zq9" + url.PathEscape(pw) + "Xv"
		in := strings.Replace(format, "%s", pw, 1)
		d, err := parseDependency("FUZZ", in)
		shown := d.shown
		if err != nil {
			shown = err.Error()
		}
		// Only a password is secret: "%s" placed where a user name goes is shown, rightly.
		if strings.Contains(format, ":%s@") && strings.Contains(shown, pw) {
			t.Fatalf("password shown for %q: %q", in, shown)
		}
		redactItem(in)
	})
}

func FuzzDiscover(f *testing.F) {
	f.Add("pgsql://u:p@db/app", "pyamqp://g:g@rabbit//", "redis://:x@r/0", "", "", "")
	f.Add("", "memory://", "unix:///tmp/r.sock", "db", "5432", "pw")
	f.Fuzz(func(t *testing.T, db, broker, redis, pghost, pgport, pgpass string) {
		b := newBuilder("DATABASE_URL="+db, "CELERY_BROKER_URL="+broker, "REDIS_URL="+redis,
			"POSTGRES_HOST="+pghost, "POSTGRES_PORT="+pgport, "POSTGRES_PASSWORD="+pgpass)
		b.discover()
		if b.errs.err() == nil {
			for _, d := range b.deps {
				if d.url == "" || d.shown == "" || d.source == "" {
					t.Fatalf("incomplete dependency %+v", d)
				}
			}
		}
		for _, e := range b.errs.List {
			if len(e.Error()) > maxMessage+10 || strings.ContainsAny(e.Error(), "\n\r\x1b") {
				t.Fatalf("message not one bounded line: %q", e.Error())
			}
		}
	})
}
