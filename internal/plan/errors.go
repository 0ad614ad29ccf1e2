package plan

import (
	"fmt"
	"github.com/entry-dev/entry/internal/redact"
	"strings"
	"unicode/utf8"
)

// Error is one invalid input. Its text starts with the variable's name.
type Error struct {
	Var string
	Err error
}

// maxMessage bounds one message: a value is never echoed whole, and a log line stays a line.
const maxMessage = 300

func (e *Error) Error() string { return clean(e.Var + ": " + e.Err.Error()) }
func (e *Error) Unwrap() error { return e.Err }

// Errors is every invalid input found in one pass, in the order the variables are read:
// a user fixes them all in one go instead of one run at a time.
type Errors struct {
	List []*Error
}

func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, x := range e.List {
		out[i] = x
	}
	return out
}

func (e *Errors) add(name, format string, args ...any) {
	e.List = append(e.List, &Error{Var: name, Err: fmt.Errorf(format, args...)})
}

func (e *Errors) has(name string) bool {
	for _, x := range e.List {
		if x.Var == name {
			return true
		}
	}
	return false
}

func (e *Errors) err() error {
	if len(e.List) == 0 {
		return nil
	}
	return e
}

// clean makes s safe for one log line: control characters and invalid UTF-8 are escaped, and
// the text is cut at maxMessage bytes.
func clean(s string) string { return escape(s, maxMessage) }

// escape makes s safe for one line (redact.Clean) and cuts the result at max bytes (0: no
// cut), on a character boundary.
func escape(s string, max int) string {
	s = redact.Clean(s)
	if max <= 0 || len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// tooLong says a value is over its limit without showing any of it: it may be a secret, and
// it is too long to read in a log line anyway.
func tooLong(n, limit int) string {
	return fmt.Sprintf("value of %d bytes is over the limit of %d (not shown)", n, limit)
}
