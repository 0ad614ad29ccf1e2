package procfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Entry is one process type declared in a Procfile.
type Entry struct {
	Type    string // "web"
	Command string // "gunicorn config.wsgi"
	Line    int    // 1-based line number in the Procfile
}

var (
	typeName  = lazyRegexp(`^[A-Za-z0-9_-]+$`)
	entryLine = lazyRegexp(`^([A-Za-z0-9_-]+):[ \t]*(.*)$`)
)

// ValidType reports whether name can be a process type: [A-Za-z0-9_-]+.
func ValidType(name string) bool { return typeName().MatchString(name) }

// maxLine bounds one Procfile line; a longer one is certainly not a Procfile.
const maxLine = 1 << 20

// Parse reads a Procfile: one "type: command" per line, with blank lines and
// lines starting with '#' ignored. Type names are [A-Za-z0-9_-]+ and must be
// unique. Unlike honcho and foreman, which skip lines they do not understand,
// Parse rejects them: a mistyped line would otherwise silently drop a process.
// Errors name the line.
func Parse(r io.Reader) ([]Entry, error) {
	var entries []Entry
	seen := make(map[string]int)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		line := strings.TrimSpace(string(b))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := entryLine().FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("procfile line %d: want \"type: command\" with type made of letters, digits, '_' or '-'", n)
		}
		typ, cmd := m[1], strings.TrimSpace(m[2])
		if cmd == "" {
			return nil, fmt.Errorf("procfile line %d: %s has no command", n, typ)
		}
		if first, ok := seen[typ]; ok {
			return nil, fmt.Errorf("procfile line %d: %s already declared on line %d", n, typ, first)
		}
		seen[typ] = n
		entries = append(entries, Entry{Type: typ, Command: cmd, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("procfile line %d: %w", n+1, err)
	}
	return entries, nil
}
