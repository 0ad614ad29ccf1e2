package readiness

import (
	"errors"
	"net/url"
	"strings"
)

const mask = "xxxxx"

// scrub replaces every occurrence of each secret, raw or percent-encoded, in
// s. It is the last line of defence for messages built from third-party
// errors that may quote a connection string.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			s = strings.ReplaceAll(s, form, mask)
		}
	}
	return s
}

// scrubErr returns err unchanged when its text contains none of the secrets,
// otherwise an error with the same text minus the secrets (the chain is cut:
// nothing below it can leak them later).
func scrubErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := scrub(msg, secrets...); clean != msg {
		return errors.New(clean)
	}
	return err
}

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
					q[k][i] = mask
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

// userinfo returns the user name and password of u, percent-decoded.
func userinfo(u *url.URL) (user, pass string, hasPass bool) {
	if u.User == nil {
		return "", "", false
	}
	pass, hasPass = u.User.Password()
	return u.User.Username(), pass, hasPass
}
