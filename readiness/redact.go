package readiness

import (
	"errors"
	"net/url"
	"strings"

	"github.com/entry-dev/entry/internal/redact"
)

// sensitiveParam reports whether a query parameter probably holds a secret.
func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "auth", "sig", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// redactedURL renders u for logs: the user name is kept, the password dropped,
// and query values that look like secrets are masked.
func redactedURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if sensitiveParam(k) {
				for i := range q[k] {
					q[k][i] = redact.Mask
				}
			}
		}
		c.RawQuery = q.Encode()
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// badURL is the error for a URL that does not parse. net/url quotes the
// offending part (with a misplaced '/' in a password, "invalid port" quotes
// part of the password), so the parser's message is never passed on.
func badURL(kind string) error {
	return errors.New("invalid " + kind + " URL: it does not parse as a URL " +
		"(percent-encode reserved characters such as / ? # @ : % in the user name and password)")
}

// strayAt reports whether '@' appears after the host of a URL. That almost
// always means a password with an unescaped '/', '?' or '#'
// ("postgres://app:pa/ss@db/app" parses as host "app" and database
// "ss@db/app"), which would put part of the password in logs. A real '@' in
// a path or query must be written %40.
func strayAt(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	i := strings.IndexAny(rest, "/?#")
	return i >= 0 && strings.Contains(rest[i:], "@")
}

// atsInAuthority counts the '@' between "://" and the path. More than one
// means an unescaped '@' in the user info, which pgx splits at the first
// '@' and Python (and net/url) at the last.
func atsInAuthority(raw string) int {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return 0
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return strings.Count(rest, "@")
}

func ambiguousURL(kind string) error {
	return errors.New("invalid " + kind + " URL: '@' after the host " +
		"(percent-encode / ? # in the password, and '@' elsewhere, as %2F %3F %23 %40)")
}

// userinfo returns the user name and password of u, percent-decoded.
func userinfo(u *url.URL) (user, pass string, hasPass bool) {
	if u.User == nil {
		return "", "", false
	}
	pass, hasPass = u.User.Password()
	return u.User.Username(), pass, hasPass
}
