package procfile

import (
	"regexp"
	"strings"
	"sync"
)

// Shell is the shell that runs commands Argv cannot split itself.
const Shell = "/bin/sh"

// Argv decides how to start command.
//
// A command without shell syntax is split into words, honouring single and
// double quotes, and argv is those words: the program is executed directly.
//
//	gunicorn config.wsgi -b '0.0.0.0:8000'  ->  [gunicorn config.wsgi -b 0.0.0.0:8000], false
//
// Any other command runs as argv = [/bin/sh -c script]. When it is a single
// simple command that needs the shell only for expansion, redirection or
// variable assignments, script gets an "exec" so that the program replaces
// the shell and receives its signals itself; shell is false.
//
//	celery -A $APP worker 2>&1       ->  [/bin/sh -c "exec celery -A $APP worker 2>&1"], false
//	DJANGO_DEBUG=1 python manage.py  ->  [/bin/sh -c "DJANGO_DEBUG=1 exec python manage.py"], false
//
// A compound command (';', '&&', '||', '|', '&', subshells, shell keywords
// and builtins) keeps the shell as the parent of its programs, and shell is
// true: a stop signal sent to the shell alone would not reach them, so the
// caller should deliver it to the process group.
//
//	./manage.py migrate && gunicorn  ->  [/bin/sh -c "./manage.py migrate && gunicorn"], true
//
// The check is conservative: anything that might be shell syntax goes to the
// shell, so a command is never split differently from how sh would split it.
// argv is empty only for an empty command.
func Argv(command string) (argv []string, shell bool) {
	command = strings.TrimSpace(command)
	ws, plain, compound := scan(command)
	if len(ws) == 0 {
		if command == "" {
			return nil, false
		}
		return []string{Shell, "-c", command}, compound
	}
	sh := func(script string, compound bool) ([]string, bool) {
		return []string{Shell, "-c", script}, compound
	}
	if compound {
		return sh(command, true)
	}

	// The prefix holds assignments and redirections before the program name.
	i, assigns, redirs := 0, false, false
	for i < len(ws) {
		raw := command[ws[i].start:ws[i].end]
		if assignment().MatchString(raw) {
			assigns = true
			i++
			continue
		}
		if m := redirection().FindString(raw); m != "" {
			redirs = true
			i++
			if m == raw { // "> file": the target is the next word
				i++
			}
			continue
		}
		break
	}
	if i >= len(ws) {
		return sh(command, false) // nothing to run: the shell is all there is
	}
	name := ws[i].text
	switch {
	case name == "exec":
		if plain && i == 0 && len(ws) > 1 && !strings.HasPrefix(ws[1].text, "-") {
			return words(ws[1:]), false
		}
		return sh(command, false)
	case builtins[name]:
		return sh(command, true)
	case assigns && redirs:
		// "exec" cannot go between them without turning one into the
		// program name; rare enough to leave the shell in place.
		return sh(command, true)
	case plain && i == 0:
		return words(ws), false
	}
	at := 0
	if assigns {
		at = ws[i].start
	}
	return sh(command[:at]+"exec "+command[at:], false)
}

type word struct {
	text       string // after quote removal
	start, end int    // raw span in the command
}

func words(ws []word) []string {
	argv := make([]string, len(ws))
	for i, w := range ws {
		argv[i] = w.text
	}
	return argv
}

// Compiled on first use, not in package init: every start of entry would pay for them
// (≈0.1 ms with procfile.go's), and `entry -- cmd` never uses them.
var (
	assignment  = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*=`)
	redirection = lazyRegexp(`^[0-9]*(<<-|<<|<>|<&|<|>>|>&|>\||>)`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// builtins are words that cannot follow "exec": keywords and builtins that
// have no program of the same name.
var builtins = map[string]bool{
	"!": true, "{": true, "}": true, "if": true, "then": true, "else": true,
	"elif": true, "fi": true, "for": true, "while": true, "until": true,
	"do": true, "done": true, "case": true, "esac": true, "in": true,
	"function": true, "select": true, "[[": true, ":": true, ".": true,
	"source": true, "cd": true, "export": true, "set": true, "unset": true,
	"eval": true, "trap": true, "ulimit": true, "umask": true, "alias": true,
	"wait": true, "readonly": true, "shift": true, "times": true,
	"return": true, "exit": true, "break": true, "continue": true,
	"read": true, "jobs": true, "fg": true, "bg": true, "hash": true,
	"type": true, "command": true, "local": true, "getopts": true,
}

// scan splits s into words at unquoted blanks. plain reports that s has no
// shell syntax beyond quoting, so the words are exactly what sh would pass to
// the program. compound reports an operator that makes a list, pipeline,
// background job or subshell, where the shell stays.
func scan(s string) (ws []word, plain, compound bool) {
	plain = true
	var b strings.Builder
	start, in := -1, false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote == '\'' {
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
			continue
		}
		if quote == '"' {
			switch c {
			case '"':
				quote = 0
			case '$', '`', '\\':
				plain = false
				b.WriteByte(c)
				if c == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			default:
				b.WriteByte(c)
			}
			continue
		}
		if c == ' ' || c == '\t' {
			if in {
				ws = append(ws, word{b.String(), start, i})
				b.Reset()
				in = false
			}
			continue
		}
		if !in {
			start, in = i, true
		}
		switch c {
		case '\'', '"':
			quote = c
			continue
		case '\\':
			plain = false
			b.WriteByte(c)
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
			continue
		case ';', '(', ')', '\n', '\r':
			compound = true
		case '&':
			if i == 0 || (s[i-1] != '>' && s[i-1] != '<') {
				compound = true
			}
		case '|':
			if i == 0 || s[i-1] != '>' {
				compound = true
			}
		}
		if strings.IndexByte("$|&;<>()*?[]{}~!#\n\r`", c) >= 0 {
			plain = false
		}
		b.WriteByte(c)
	}
	if quote != 0 {
		plain = false
	}
	if in {
		ws = append(ws, word{b.String(), start, len(s)})
	}
	return ws, plain, compound
}

// Words splits command into words at unquoted blanks, with quotes removed,
// as Argv does: what entry reads to recognise a program and its flags in a
// command it may still hand to the shell. Expansions stay as written.
func Words(command string) []string {
	ws, _, _ := scan(command)
	return words(ws)
}
