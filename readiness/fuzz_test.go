package readiness

import (
	"net/url"
	"strings"
	"testing"
)

// The constructors parse untrusted configuration: they must never panic,
// and what they accept must have a name.

var urlSeeds = []string{
	"", "://", "redis://", "redis://:pw@host:6379/0", "rediss://u:p@h/1?ssl_cert_reqs=none", "redis://h?db=x",
	"postgres://app:pw@db:5432/app?sslmode=disable", "postgresql://u:p@/db?host=/var/run/postgresql",
	"postgres://u:p@ss@db/app", "postgres://u:p/w@db/app", "host=db user=app password='a b' dbname=app",
	"postgres://[::1", "postgres://h:99999/x", "amqp://guest:guest@mq:5672/%2F", "amqps://u:p@[::1]/vh",
	"amqp://u:p@h:x/", "http://elastic:pw@es:9200/_cluster/health?wait_for_status=yellow&timeout=5s",
	"https://[::1]:8443/x?token=t#f", "tcp://db:5432", "[::1]:5432", "%zz", "\x00", "redis://%41:%42@h",
}

func fuzzConstructor(f *testing.F, build func(string) (Checker, error)) {
	for _, s := range urlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := build(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", s)
			}
			return
		}
		if c == nil || c.String() == "" {
			t.Fatalf("accepted %q without a name", s)
		}
	})
}

func FuzzNewRedis(f *testing.F) {
	fuzzConstructor(f, func(s string) (Checker, error) { return NewRedis(s) })
}

func FuzzNewPostgres(f *testing.F) {
	fuzzConstructor(f, func(s string) (Checker, error) { return NewPostgres(s) })
}

func FuzzNewAMQP(f *testing.F) {
	fuzzConstructor(f, func(s string) (Checker, error) { return NewAMQP(s) })
}

func FuzzNewHTTP(f *testing.F) {
	fuzzConstructor(f, func(s string) (Checker, error) { return NewHTTP(s, HTTPOptions{}) })
}

func FuzzNewTCP(f *testing.F) {
	fuzzConstructor(f, func(s string) (Checker, error) { return NewTCP(s) })
}

// FuzzPasswordNeverShown builds URLs with a password in the user info, the
// way a user would write them (escaped or not), and requires that neither
// the constructor's error nor the checker's name shows it.
func FuzzPasswordNeverShown(f *testing.F) {
	for _, s := range []string{"s3cret-pw", "p@ss/w:rd", "Hunter2!!", "with space", "pa%ss%2F", "ÅÄÖ-secret"} {
		f.Add(s, "app", "db:5432", true)
		f.Add(s, "", "[::1]:1", false)
	}
	f.Fuzz(func(t *testing.T, pass, user, host string, escape bool) {
		// The password may hold anything; the user name and host are ones
		// a URL can carry unescaped (a '?' or '/' there turns the rest of
		// the string, password included, into a query or path).
		if len(pass) < 6 || strings.TrimSpace(pass) != pass || strings.ContainsAny(user+host, "/?#@") {
			return
		}
		for _, scheme := range []string{"postgres", "postgresql", "amqp", "amqps", "redis", "rediss", "http", "https"} {
			build := func(pw string) (raw, text string) {
				if escape {
					u := url.URL{Scheme: scheme, User: url.UserPassword(user, pw), Host: host, Path: "/x"}
					raw = u.String()
				} else {
					raw = scheme + "://" + user + ":" + pw + "@" + host + "/x"
				}
				var c Checker
				var err error
				switch scheme {
				case "postgres", "postgresql":
					c, err = NewPostgres(raw)
				case "amqp", "amqps":
					c, err = NewAMQP(raw)
				case "redis", "rediss":
					c, err = NewRedis(raw)
				default:
					c, err = NewHTTP(raw, HTTPOptions{})
				}
				if err != nil {
					return raw, err.Error()
				}
				return raw, c.String()
			}
			enc := url.UserPassword("", pass).String()[1:]
			// Skip when the password shows up anyway, with another one in
			// its place: it coincides with the rest of the URL.
			if _, other := build("Placeholder-Qx9"); strings.Contains(other, pass) || strings.Contains(other, enc) {
				continue
			}
			raw, text := build(pass)
			if strings.Contains(text, pass) || (len(enc) >= 6 && strings.Contains(text, enc)) {
				t.Fatalf("%s: password %q shown in %q", raw, pass, text)
			}
		}
	})
}
