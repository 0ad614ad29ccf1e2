package redact

import (
	"errors"
	"strings"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		secret, msg, want string
	}{
		{"", "connect: refused", "connect: refused"},
		{"hunter2", "connect: refused", "connect: refused"},
		{"hunter2", "bad DSN password=hunter2 host=x", "bad DSN password=xxxxx host=x"},
		{"a b/c", "bad url u:a%20b%2Fc@h", "bad url u:xxxxx@h"},
		{"a b/c", "bad url u:a+b%2Fc@h", "bad url u:xxxxx@h"},
	}
	for _, tc := range tests {
		base := errors.New(tc.msg)
		err := Error(base, tc.secret)
		if got := err.Error(); got != tc.want {
			t.Errorf("Error(%q, %q): got %q, want %q", tc.msg, tc.secret, got, tc.want)
		}
		if !errors.Is(err, base) {
			t.Errorf("Error(%q, %q) lost the wrapped error", tc.msg, tc.secret)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		cmd, want string
	}{
		{"python manage.py migrate --noinput", "python manage.py migrate --noinput"},
		{"  keep   spacing ", "  keep   spacing "},
		{"check https://example.com/x?a=b@c", "check https://example.com/x?a=b@c"},
		{"check postgres://u@db/app", "check postgres://u@db/app"},
		{"check postgres://u:pw@db/app", "check postgres://u:xxxxx@db/app"},
		{"check --db=postgres://u:pw@db/app -v", "check --db=postgres://u:xxxxx@db/app -v"},
		{`env DATABASE_URL="postgres://u:pw@db/app" x`, `env DATABASE_URL="postgres://u:xxxxx@db/app" x`},
		{"check redis://:pw@cache:6379/0", "check redis://:xxxxx@cache:6379/0"},
		{"check postgres://u:p%zz@db/app", "check xxxxx"},
	}
	for _, tc := range tests {
		if got := Command(tc.cmd); got != tc.want {
			t.Errorf("Command(%q): got %q, want %q", tc.cmd, got, tc.want)
		}
	}

	got := Command("psql postgres://app:hunter2@db/app -c 'select 1' && curl http://u:tok@x/")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "tok") {
		t.Errorf("Command leaked: %s", got)
	}
	if !strings.Contains(got, "postgres://app:xxxxx@db/app") {
		t.Errorf("Command = %s", got)
	}
}
