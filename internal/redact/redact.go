package redact

import (
	"net/url"
	"strings"
)

// Mask stands where a secret was.
const Mask = "xxxxx"

// String replaces every occurrence of each secret in s, raw or percent-encoded
// (as a URL quotes it). It is the last line of defence for texts built from
// third-party errors that may quote a connection string.
func String(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			s = strings.ReplaceAll(s, form, Mask)
		}
	}
	return s
}

// Error returns err unchanged when its text holds none of the secrets, and
// otherwise an error with the masked text that still unwraps to err, so that
// errors.Is and errors.As go on classifying it.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := String(msg, secrets...)
	if clean == msg {
		return err
	}
	return &maskedError{msg: clean, err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// Command hides the password of every URL in a command line, such as a release
// step `manage.py check --database postgres://u:pw@db/app`. A URL that does not
// parse is masked whole; a line with nothing to hide comes back unchanged.
func Command(line string) string {
	fields := strings.Fields(line)
	changed := false
	for i, f := range fields {
		j := strings.Index(f, "://")
		if j < 0 || !strings.Contains(f[j:], "@") {
			continue
		}
		// The URL starts at its scheme, after any `--flag=` or `VAR=` and quote.
		k := strings.LastIndexAny(f[:j], `="'`) + 1
		raw := strings.TrimRight(f[k:], `"'`)
		u, err := url.Parse(raw)
		if err != nil {
			fields[i], changed = f[:k]+Mask, true
			continue
		}
		if _, ok := u.User.Password(); ok {
			fields[i], changed = f[:k]+u.Redacted()+f[k+len(raw):], true
		}
	}
	if !changed {
		return line
	}
	return strings.Join(fields, " ")
}
