package procfile

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxInstances bounds one count in a formation, so that a typo such as
// worker=20000 is reported instead of forking the container to death.
const MaxInstances = 100

// ParseFormation reads instance counts such as "web=1,worker=2" (commas or
// spaces between items), as foreman's -m and honcho's -c do. The key "all"
// sets the count of every type not named; 0 disables a type. An empty string
// gives an empty formation. See Count.
func ParseFormation(s string) (map[string]int, error) {
	f := make(map[string]int)
	items := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	for _, item := range items {
		typ, num, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("formation %q: want type=count", item)
		}
		if !typeName().MatchString(typ) {
			return nil, fmt.Errorf("formation %q: bad process type %q", item, typ)
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("formation %q: count must be a whole number from 0 to %d", item, MaxInstances)
		}
		if n > MaxInstances {
			return nil, fmt.Errorf("formation %q: count above %d", item, MaxInstances)
		}
		if _, dup := f[typ]; dup {
			return nil, fmt.Errorf("formation %q: %s given twice", item, typ)
		}
		f[typ] = n
	}
	return f, nil
}

// Count returns how many instances of typ the formation asks for: its own
// count, else the "all" count, else 1.
func Count(formation map[string]int, typ string) int {
	if n, ok := formation[typ]; ok {
		return n
	}
	if n, ok := formation["all"]; ok {
		return n
	}
	return 1
}
