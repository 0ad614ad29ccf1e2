package plan

import "strings"

// environment is what a plan is built from, as os.Environ returns it. It is passed in, never
// read from the process, so that a test builds a plan (and runs entry) with an environment of
// its own.
type environment struct {
	list []string
	m    map[string]string
}

// newEnv indexes environ (KEY=VALUE entries). The last entry of a name wins, as in getenv(3)
// for an environment built by appending.
func newEnv(environ []string) environment {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return environment{list: environ, m: m}
}

// Get returns the value of name, "" when unset.
func (e environment) Get(name string) string { return e.m[name] }

// Names returns every variable name, in the environment's order.
func (e environment) Names() []string {
	seen := make(map[string]bool, len(e.list))
	var out []string
	for _, kv := range e.list {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
