package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		cmd, want string
		secrets   []string
	}{
		{cmd: "python manage.py migrate --noinput"},
		{cmd: "  keep   spacing "},
		{cmd: "check https://example.com/x?a=b@c", want: "check https://xxxxx@c"}, // an '@' after '/': masked, to be safe
		{cmd: "check postgres://u@db/app", want: "check postgres://xxxxx@db/app"},
		{cmd: "check postgres://u:pw@db/app", want: "check postgres://u:xxxxx@db/app"},
		{cmd: "check --db=postgres://u:pw@db/app -v", want: "check --db=postgres://u:xxxxx@db/app -v"},
		{cmd: `env DATABASE_URL="postgres://u:pw@db/app" x`, want: `env DATABASE_URL=postgres://u:xxxxx@db/app x`},
		{cmd: "check redis://:pw@cache:6379/0", want: "check redis://:xxxxx@cache:6379/0"},
		{cmd: "check postgres://u:p%zz@db/app", want: "check postgres://u:xxxxx@db/app"},
		{cmd: `psql "postgres://app:pa ss@db/app" -c 'select 1'`, want: `psql postgres://app:xxxxx@db/app -c 'select 1'`},
		{cmd: "PGPASSWORD=Sekr1tEnv sh -c 'exit 4'", want: "PGPASSWORD=xxxxx sh -c 'exit 4'"},
		{cmd: `PGPASSWORD="two words" psql`, want: "PGPASSWORD=xxxxx psql"},
		{cmd: "env API_TOKEN=abc123 python worker.py", want: "env API_TOKEN=xxxxx python worker.py"},
		{cmd: "SENTRY_DSN=https://k@o1.ingest.sentry.io/1 gunicorn", want: "SENTRY_DSN=xxxxx gunicorn"},
		{cmd: "PWD=/app OLDPWD=/ ls", want: ""},
		{cmd: "manage.py createsuperuser --password hunter2 --noinput", want: "manage.py createsuperuser --password xxxxx --noinput"},
		{cmd: "manage.py x --password=hunter2", want: "manage.py x --password=xxxxx"},
		{cmd: "tool -password hunter2", want: "tool -password xxxxx"},
		{cmd: "psql --no-password -c 'select 1'"},
		{cmd: "tool --api-key 'a b c' next", want: "tool --api-key xxxxx next"},
		{cmd: "mysql -uroot -pHunter2 app", want: "mysql -uroot -pxxxxx app"},
		{cmd: "psql -p 5432 -h db"},
		{cmd: "gunicorn -p /run/g.pid app:wsgi"},
		{cmd: "redis-cli -a hunter2 ping", want: "redis-cli -a xxxxx ping"},
		{cmd: "curl -u admin:hunter2 http://h/", want: "curl -u admin:xxxxx http://h/"},
		{cmd: `sh -c "PGPASSWORD=Sekr1t psql -c 'select 1'"`, want: `sh -c 'PGPASSWORD=xxxxx psql -c '\''select 1'\'''`},
		{cmd: `bash -c "psql \"host=db password='s3 cret'\""`, want: `bash -c 'psql '\''host=db password=xxxxx'\'''`},
		{cmd: `env "PGPASSWORD=two words" psql`, want: `env PGPASSWORD=xxxxx psql`},
		{cmd: "echo hunter2 && run hunter2x", want: "echo xxxxx && run hunter2x", secrets: []string{"hunter2"}},
		{cmd: "ping 127.0.0.1", secrets: []string{"127"}},
		{cmd: "psql -U postgres -d postgres", want: "psql -U xxxxx -d xxxxx", secrets: []string{"postgres"}},
		{cmd: "run --opt=hunter2 X=hunter2", want: "run --opt=xxxxx X=xxxxx", secrets: []string{"hunter2"}},
		{cmd: `psql 'postgres://app:it'"'"'s@db/app'`, want: `psql postgres://app:xxxxx@db/app`},
		{cmd: "a; b DB_PASS=x | c", want: "a; b DB_PASS=xxxxx | c"},
	}
	for _, tc := range tests {
		want := tc.want
		if want == "" {
			want = tc.cmd
		}
		if got := Command(tc.cmd, tc.secrets...); got != want {
			t.Errorf("Command(%q, %q):\n got %s\nwant %s", tc.cmd, tc.secrets, got, want)
		}
	}
}

func TestSecretName(t *testing.T) {
	for _, n := range []string{"PGPASSWORD", "POSTGRES_PASSWORD", "DB_PASSWD", "MYSQL_PWD", "SECRET_KEY", "API_TOKEN",
		"AWS_SECRET_ACCESS_KEY", "SENTRY_DSN", "GOOGLE_APPLICATION_CREDENTIALS", "BASIC_AUTH", "password", "sslpassword",
		"SESSION_COOKIE_NAME", "private_key"} {
		if !SecretName(n) {
			t.Errorf("SecretName(%q) = false", n)
		}
	}
	for _, n := range []string{"PATH", "HOME", "PWD", "OLDPWD", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "host", "user", "dbname"} {
		if SecretName(n) {
			t.Errorf("SecretName(%q) = true", n)
		}
	}
}

func TestSecrets(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"postgres://u:p%20w@db/app", []string{"p%20w", "p w"}},
		{"redis://tok@cache:6379/0", []string{"tok"}},
		{"amqp://guest:guest@mq:5672/", []string{"guest"}},
		{"postgres://db/app", nil},
		{"host='db' user='u' password='s3 cret' dbname='d'", []string{"s3 cret"}},
		{"host=db password=hunter2 dbname=d", []string{"hunter2"}},
		{`host='db' password='it\'s a \\ b' dbname='d'`, []string{`it's a \ b`}},
	}
	for _, tc := range tests {
		if got := Secrets(tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Secrets(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text é", "plain text é"},
		{"a\r\nb", `a\r\nb`},
		{"nul\x00here", `nul\x00here`},
		{"esc\x1b[31m", `esc\x1b[31m`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"c1\u0085", `c1\u0085`},
	}
	for _, tc := range tests {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// placements are the structural positions a secret can take in a command
// line, each as a function of the secret rendered for that place.
var placements = []func(secret string) string{
	func(s string) string { return "PGPASSWORD=" + quote(s) + " sh -c 'exit 4'" },
	func(s string) string { return "env API_TOKEN=" + quote(s) + " python worker.py" },
	func(s string) string { return "manage.py createsuperuser --password " + quote(s) + " --noinput" },
	func(s string) string { return "manage.py x --password=" + quote(s) },
	func(s string) string {
		return "psql postgres://app:" + url.PathEscape(s) + "@db:5432/app -c 'select 1'"
	},
	func(s string) string { return "psql " + quote("postgres://app:"+s+"@db:5432/app") },
	func(s string) string { return "sh -c " + quote("PGPASSWORD="+quote(s)+" psql -h db") },
	func(s string) string { return "mysql -uroot -p" + quote(s) + " app" },
	func(s string) string { return "run " + quote(s) + " --verbose" }, // a known secret as a whole word
}

// FuzzCommand checks the masking property: the output contains no secret, and
// no substring of it longer than 3 bytes, that the input did not contain
// outside the secret.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"hunter2", "pa ss", "it's", `a"b`, "p@ss/w:rd", "postgres", "127", "x", "a\nb", "€uro$HOME", "--x"} {
		for i := range placements {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, secret string, form uint8) {
		place := placements[int(form)%len(placements)]
		if secret == "" || strings.Contains(secret, "://") {
			return
		}
		in := place(secret)
		outside := place(Mask)
		got := Command(in, secret)
		leaks := func(s string) bool { return strings.Contains(got, s) && !strings.Contains(outside, s) }
		for _, form := range []string{secret, url.PathEscape(secret), quote(secret)} {
			if leaks(form) {
				t.Fatalf("Command(%q) = %q shows the secret %q", in, got, form)
			}
			for i := 0; i < len(form); i++ {
				for j := i + 4; j <= len(form); j++ {
					if leaks(form[i:j]) {
						t.Fatalf("Command(%q) = %q shows %q, part of the secret %q", in, got, form[i:j], secret)
					}
				}
			}
		}
	})
}

// FuzzCommandUnknownSecret runs the same property without telling Command the
// secret: structure alone must hide it (the whole-word form is left out, as
// only a known secret can be found there).
func FuzzCommandUnknownSecret(f *testing.F) {
	for _, s := range []string{"hunter2", "pa ss", "it's", "p@ss/w:rd", "postgres"} {
		for i := range placements[:len(placements)-1] {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, secret string, form uint8) {
		place := placements[int(form)%(len(placements)-1)]
		if secret == "" || strings.Contains(secret, "://") {
			return
		}
		in := place(secret)
		got := Command(in)
		outside := place(Mask)
		for i := 0; i < len(secret); i++ {
			for j := i + 4; j <= len(secret); j++ {
				if s := secret[i:j]; strings.Contains(got, s) && !strings.Contains(outside, s) {
					t.Fatalf("Command(%q) = %q shows %q, part of the secret %q", in, got, s, secret)
				}
			}
		}
	})
}

// FuzzCommandNoPanic feeds arbitrary lines: Command must not panic, and a
// line it changes must still hold the mask.
func FuzzCommandNoPanic(f *testing.F) {
	f.Add(`sh -c "a=b 'c" \`)
	f.Add("x://@")
	f.Add("--password")
	f.Fuzz(func(t *testing.T, line string) {
		got := Command(line, "s3cret")
		if got != line && !strings.Contains(got, Mask) {
			t.Fatalf("Command(%q) = %q changed without masking", line, got)
		}
	})
}
