package redact

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Mask stands where a secret was. It has a fixed length, so it says nothing
// about the secret's.
const Mask = "xxxxx"

// Command returns line, a shell command line as a user wrote it, with every
// secret it carries replaced by Mask. Secrets are found by the place they
// occupy, never by searching the text for a known value:
//
//   - the user information of a URL anywhere in a word (postgres://u:xxxxx@db,
//     https://xxxxx@host for a lone token), quoted or not, spaces included;
//   - the value of an assignment whose name names a secret (SecretName):
//     PGPASSWORD=… sh -c …, env API_TOKEN=…, password=… in a libpq DSN;
//   - the value of a flag whose name names a secret: --password X,
//     --password=X, -password X; and two program-specific short forms,
//     mysql/mariadb -pX (attached only: `-p X` prompts and X is the database)
//     and redis-cli -a X. A bare -p is left alone: it is a port (psql, redis-cli)
//     or a pid file (gunicorn) far more often than a password;
//   - a word, or the value of a NAME=value or --flag=value word, that equals
//     one of the known secrets exactly (whole words only: "127" is not masked
//     inside "127.0.0.1").
//
// Words holding a script (sh -c '…', a quoted DSN) are masked recursively.
// What is not a secret is kept byte for byte, so a line with nothing to hide
// comes back unchanged.
func Command(line string, secrets ...string) string {
	return command(line, secrets, 0)
}

// maxDepth bounds the recursion into words that hold scripts (sh -c "bash -c '…'").
const maxDepth = 4

func command(line string, secrets []string, depth int) string {
	toks := lex(line)
	var b strings.Builder
	prev, changed := 0, false
	var prog string
	var next valueKind // what the previous word says about this one
	cmdStart, script := true, false
	for _, t := range toks {
		if t.op {
			prog, next, cmdStart, script = "", valueNone, true, false
			continue
		}
		w := t.text
		out, kind := w, valueNone
		switch {
		case script && depth < maxDepth:
			// The argument of -c is a script (sh -c, bash -c, su -c): its
			// words are masked in turn, so "PGPASSWORD=x psql" keeps psql.
			out = command(w, secrets, depth+1)
		case next == valueSecret:
			// Even a word starting with '-': passwords may, and a flag
			// that takes no value (psql --password) costs one masked word.
			out = Mask
		case next == valueUserPass && !strings.HasPrefix(w, "-"):
			if u, _, ok := strings.Cut(w, ":"); ok {
				out = u + ":" + Mask
			}
		default:
			out, kind = maskWord(w, prog, secrets, depth)
		}
		next, script = kind, w == "-c"
		if cmdStart && !isAssignment(w) && !strings.HasPrefix(w, "-") {
			switch base := baseName(w); base {
			case "env", "exec", "command", "nohup", "sudo", "time", "nice":
			default:
				prog, cmdStart = base, false
			}
		}
		if out != w {
			b.WriteString(line[prev:t.start])
			b.WriteString(quote(out))
			prev, changed = t.end, true
		}
	}
	if !changed {
		return line
	}
	b.WriteString(line[prev:])
	return b.String()
}

// valueKind says how the word after a flag is to be treated.
type valueKind int

const (
	valueNone     valueKind = iota
	valueSecret             // --password X: X is a secret
	valueUserPass           // curl -u user:X
)

// maskWord masks one decoded word; kind tells what the next word is.
func maskWord(w, prog string, secrets []string, depth int) (string, valueKind) {
	if isSecret(w, secrets) {
		return Mask, valueNone
	}
	if strings.HasPrefix(w, "-") && len(w) > 1 {
		if isMySQL(prog) && strings.HasPrefix(w, "-p") && len(w) > 2 {
			return "-p" + Mask, valueNone
		}
		name, value, hasValue := strings.Cut(w, "=")
		flag := strings.TrimLeft(name, "-")
		secretFlag := len(flag) > 1 && secretFlagName(flag)
		if hasValue {
			if secretFlag || isSecret(value, secrets) {
				return name + "=" + Mask, valueNone
			}
			return name + "=" + maskValue(value, secrets, depth), valueNone
		}
		switch {
		case secretFlag:
			return w, valueSecret
		case prog == "redis-cli" && w == "-a":
			return w, valueSecret
		case (prog == "curl" || prog == "wget") && (w == "-u" || w == "--user"):
			return w, valueUserPass
		}
		return w, valueNone
	}
	if isAssignment(w) {
		name, value, _ := strings.Cut(w, "=")
		if SecretName(name) || isSecret(value, secrets) {
			return name + "=" + Mask, valueNone
		}
		return name + "=" + maskValue(value, secrets, depth), valueNone
	}
	return maskValue(w, secrets, depth), valueNone
}

// maskValue masks URLs in v and, when v holds more than one word, the words
// of the script it holds.
func maskValue(v string, secrets []string, depth int) string {
	v = maskURLs(v)
	if depth < maxDepth && strings.ContainsAny(v, " \t\n;&|()<>'\"\\`$") {
		v = command(v, secrets, depth+1)
	}
	return v
}

func isSecret(w string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && w == s {
			return true
		}
	}
	return false
}

// maskURLs masks the user information of every URL in s, a decoded word. The
// user information runs from "scheme://" to the last '@' before the next URL
// or the end; it may contain spaces only when the URL starts the word or
// follows '=', as a quoted URL does. With a password only the
// password is masked (u:xxxxx@); without one the whole user part is, since a
// lone user name is often a token (https://TOKEN@github.com/…).
func maskURLs(s string) string {
	var b strings.Builder
	prev := 0
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		start := i + j + 3
		if i+j == 0 || !isSchemeChar(s[i+j-1]) {
			i = start
			continue
		}
		schemeAt := i + j
		for schemeAt > 0 && isSchemeChar(s[schemeAt-1]) {
			schemeAt--
		}
		spaced := schemeAt == 0 || s[schemeAt-1] == '='

		end := len(s)
		if k := strings.Index(s[start:], "://"); k >= 0 {
			end = start + k
		}
		if !spaced {
			if k := strings.IndexAny(s[start:end], " \t\n"); k >= 0 {
				end = start + k
			}
		}
		at := strings.LastIndex(s[start:end], "@")
		if at < 0 {
			i = start
			continue
		}
		at += start
		b.WriteString(s[prev:start])
		if colon := strings.IndexByte(s[start:at], ':'); colon >= 0 {
			b.WriteString(s[start : start+colon+1])
		}
		b.WriteString(Mask)
		prev, i = at, at
	}
	if prev == 0 {
		return s
	}
	b.WriteString(s[prev:])
	return b.String()
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// isAssignment reports whether w is NAME=value with NAME a shell variable
// name (or a libpq keyword, which has the same form).
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// secretWords are the parts of a name that mark its value as a secret:
// Django's HIDDEN_SETTINGS (API, TOKEN, KEY, SECRET, PASS, SIGNATURE, COOKIE)
// and the further words of Sentry's default deny list (AUTH, CREDENTIALS,
// PWD, SESSION, CSRF, PRIVATE), plus DSN (SENTRY_DSN carries a key) and SALT.
// Matching is by substring, as Django's is: a name such as PASSENGER_APP_ENV
// is masked too, which costs a little readability and never a secret.
var secretWords = []string{"PASS", "PWD", "SECRET", "TOKEN", "KEY", "API", "DSN", "CREDENTIAL",
	"AUTH", "SIGNATURE", "COOKIE", "SESSION", "CSRF", "PRIVATE", "SALT"}

// SecretName reports whether an environment variable, setting or parameter
// named name holds a secret (see secretWords). PWD and OLDPWD, the shell's
// working directories, are not secrets.
func SecretName(name string) bool {
	n := strings.ToUpper(name)
	if n == "PWD" || n == "OLDPWD" {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// secretFlagName is SecretName for a flag name without its dashes; --no-…
// and --without-… flags take no secret.
func secretFlagName(flag string) bool {
	f := strings.ToLower(flag)
	if strings.HasPrefix(f, "no-") || strings.HasPrefix(f, "no_") || strings.HasPrefix(f, "without") {
		return false
	}
	return SecretName(strings.ReplaceAll(f, "-", "_"))
}

func isMySQL(prog string) bool {
	return strings.HasPrefix(prog, "mysql") || strings.HasPrefix(prog, "mariadb")
}

func baseName(w string) string {
	if i := strings.LastIndexByte(w, '/'); i >= 0 {
		return w[i+1:]
	}
	return w
}

// token is a word (decoded, with the byte span it occupies in the line) or a
// control operator (; & | && || ( ) newline).
type token struct {
	text       string
	start, end int
	op         bool
}

// lex splits a command line into words the way a POSIX shell does, as far as
// masking needs: quotes and backslashes are removed from the word's text, and
// an unterminated quote runs to the end of the line.
func lex(s string) []token {
	var toks []token
	var w strings.Builder
	start, inWord := 0, false
	begin := func(i int) {
		if !inWord {
			start, inWord = i, true
		}
	}
	flush := func(end int) {
		if inWord {
			toks = append(toks, token{text: w.String(), start: start, end: end})
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush(i)
			i++
		case (c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')') && !inAuthority(w.String()):
			flush(i)
			j := i + 1
			if (c == '&' || c == '|') && j < len(s) && s[j] == c {
				j++
			}
			toks = append(toks, token{text: s[i:j], start: i, end: j, op: true})
			i = j
		case c == '\'':
			begin(i)
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				w.WriteString(s[i+1:])
				i = len(s)
			} else {
				w.WriteString(s[i+1 : i+1+j])
				i += j + 2
			}
		case c == '"':
			begin(i)
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
				i++
			}
			i++ // the closing quote, if any
		case c == '\\':
			begin(i)
			if i+1 < len(s) {
				w.WriteByte(s[i+1])
			}
			i += 2
		default:
			begin(i)
			w.WriteByte(c)
			i++
		}
	}
	flush(len(s))
	return toks
}

// inAuthority reports whether a word being read ends inside the authority of
// a URL (after "://", before any '/', '?' or '#'). An unquoted '&' or ';' in a
// password is a shell error, but the password must stay masked: there, such a
// character is read as part of the word.
func inAuthority(w string) bool {
	i := strings.LastIndex(w, "://")
	return i >= 0 && !strings.ContainsAny(w[i+3:], "/?#")
}

// quote renders a word for a shell: as is when nothing in it is special,
// single-quoted otherwise.
func quote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=:/@.,%") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Secrets returns the secrets a connection string carries, for Command's
// whole-word matching: the password of a URL (raw and decoded), a lone user
// name (often a token), and the password= value of a libpq keyword/value
// DSN.
func Secrets(connString string) []string {
	var out []string
	add := func(v string) {
		if v != "" {
			out = append(out, v)
		}
	}
	if _, rest, ok := strings.Cut(connString, "://"); ok {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 && !strings.Contains(rest[i:], "@") {
			rest = rest[:i]
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return nil
		}
		user, pw, hasPw := strings.Cut(rest[:at], ":")
		if !hasPw {
			pw = user
		}
		add(pw)
		if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
			add(dec)
		}
		return out
	}
	// A libpq keyword/value string: values are bare words or single-quoted
	// with backslash escapes.
	for s := connString; s != ""; {
		s = strings.TrimLeft(s, " \t\n")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		rest = strings.TrimLeft(rest, " \t\n")
		var v strings.Builder
		if strings.HasPrefix(rest, "'") {
			i := 1
			for ; i < len(rest) && rest[i] != '\''; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				v.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexAny(rest, " \t\n")
			if end < 0 {
				end = len(rest)
			}
			v.WriteString(rest[:end])
			s = rest[end:]
		}
		if strings.TrimSpace(key) == "password" {
			add(v.String())
		}
	}
	return out
}

// Clean makes a text from a server, a driver, a URL or a file safe to print on
// one line: control characters (C0 with CR, LF, NUL, ESC…, DEL, C1), the
// Unicode line separators and invalid UTF-8 become Go escapes, so a text can
// neither end a log line, nor rewrite it on a terminal, nor break a log
// pipeline's decoding. It is the one escaper of everything entry prints.
func Clean(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case r >= 0x80 && r < 0xa0:
			b.WriteString(`\u00`)
			b.WriteString(hex2(byte(r)))
		case r == '\u2028' || r == '\u2029':
			b.WriteString(`\u202`)
			b.WriteString(string(rune('0' + r - '\u2020')))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
