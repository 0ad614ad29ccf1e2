package plan

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/entry-dev/entry/procfile"
)

// A stop is a chain of deadlines: the orchestrator's budget (docker stop's
// 10 s, Kubernetes' terminationGracePeriodSeconds, 30 s) holds the
// shutdown delay plus the longest grace, and each grace must hold the
// program's own graceful stop. A link that does not fit cuts requests or
// tasks on every deploy, silently. entry warns at start about the links it
// can see; what it cannot see (a gunicorn.conf.py, celery task lengths) it
// does not guess.

// gunicornDefaultGrace is gunicorn's graceful_timeout when nothing sets it.
const gunicornDefaultGrace = 30 * time.Second

// budgetWarnings checks the Procfile's processes, or, when there are none,
// the main process's grace against the budget (CommandWarnings adds what
// its command shows).
func (st Stop) budgetWarnings(procs []Process) []string {
	var out []string
	longest, who := st.Timeout, "ENTRY_STOP_TIMEOUT"
	count := map[string]int{}
	for _, pr := range procs {
		count[pr.Type]++
	}
	for i, pr := range procs {
		if i == 0 || pr.StopTimeout > longest {
			longest, who = pr.StopTimeout, pr.Type
		}
		if count[pr.Type] == 0 {
			continue // its type was checked at its first instance
		}
		n := count[pr.Type]
		count[pr.Type] = 0
		words := procfile.Words(pr.Command)
		if w := st.graceWarning(pr.Type, words, pr.StopTimeout, stopTimeoutPfx+typeKey(pr.Type)); w != "" {
			out = append(out, w)
		}
		if n > 1 && embeddedBeat(words) {
			out = append(out, clean(fmt.Sprintf("%s: celery worker with embedded beat (-B) runs in %d instances (ENTRY_FORMATION): every periodic task is sent %d times; run beat as a process type of its own, in one instance", pr.Type, n, n)))
		}
	}
	if st.Budget > 0 && st.Delay+longest > st.Budget {
		out = append(out, fmt.Sprintf("stop budget: shutdown delay %s + longest grace %s (%s) = %s, above ENTRY_STOP_BUDGET %s: the orchestrator kills entry before that grace is over",
			st.Delay, longest, who, st.Delay+longest, st.Budget))
	}
	return out
}

// CommandWarnings is what the main process's command shows that does not
// fit its grace (single-command mode: the plan does not see the command).
func (st Stop) CommandWarnings(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if w := st.graceWarning(path.Base(argv[0]), argv, st.Timeout, "ENTRY_STOP_TIMEOUT"); w != "" {
		return []string{w}
	}
	return nil
}

// graceWarning says so when a gunicorn in words has a graceful timeout
// above grace, the time entry gives it before SIGKILL; variable is where
// that grace is set.
func (st Stop) graceWarning(name string, words []string, grace time.Duration, variable string) string {
	d, from, ok := gunicornGrace(words, st.gunicornArgs, st.gunicornConf)
	if !ok || d <= grace {
		return ""
	}
	return clean(fmt.Sprintf("%s: gunicorn's graceful timeout %s (%s) is above its grace %s: a request still running %s after the stop signal is cut by SIGKILL; raise %s or lower the graceful timeout",
		name, d, from, grace, grace, variable))
}

// gunicornGrace finds a gunicorn program in words (a command line: the
// program may come after `python -m`, `exec`, assignments or wrappers
// such as ddtrace-run) and returns the graceful timeout it will use and
// where that comes from, in gunicorn's order: its command line, then
// GUNICORN_CMD_ARGS (an assignment before the program, else env), then a
// config file (named with -c, or ./gunicorn.conf.py when conf is set),
// else its default. ok is false when words run no gunicorn, or when the
// value may be set where entry cannot read it (a config file, an
// expansion).
func gunicornGrace(words []string, env string, conf bool) (d time.Duration, from string, ok bool) {
	at := -1
	for i, w := range words {
		if k, v, isAssign := strings.Cut(w, "="); isAssign && k == "GUNICORN_CMD_ARGS" && at < 0 {
			env = v
			continue
		}
		if path.Base(w) == "gunicorn" {
			at = i
			break
		}
	}
	if at < 0 {
		return 0, "", false
	}
	set, value, config := gunicornFlags(words[at+1:])
	if set {
		return seconds(value, "--graceful-timeout")
	}
	set, value, envConfig := gunicornFlags(procfile.Words(env))
	if set {
		return seconds(value, "GUNICORN_CMD_ARGS")
	}
	if config || envConfig || conf {
		return 0, "", false // the config file may set it
	}
	return gunicornDefaultGrace, "its default", true
}

// gunicornFlags reads gunicorn's flags that bear on its graceful timeout.
func gunicornFlags(args []string) (set bool, value string, config bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--graceful-timeout":
			set, value = true, next()
		case strings.HasPrefix(a, "--graceful-timeout="):
			set, value = true, strings.TrimPrefix(a, "--graceful-timeout=")
		case a == "-c" || a == "--config" || strings.HasPrefix(a, "--config=") || (strings.HasPrefix(a, "-c") && len(a) > 2):
			config = true
		}
	}
	return set, value, config
}

// seconds reads gunicorn's integer seconds; an expansion or a typo is not
// something entry can judge.
func seconds(v, from string) (time.Duration, string, bool) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, "", false
	}
	return time.Duration(n) * time.Second, from, true
}

// embeddedBeat reports a celery worker started with beat inside it
// (celery worker -B, --beat, or -B among other one-letter switches).
func embeddedBeat(words []string) bool {
	celery, worker := false, false
	for _, w := range words {
		switch {
		case path.Base(w) == "celery":
			celery = true
		case celery && w == "worker":
			worker = true
		case worker && (w == "-B" || w == "--beat"):
			return true
		case worker && len(w) > 2 && w[0] == '-' && w[1] != '-' && strings.Trim(w[1:], "BDE") == "":
			// Clustered flags such as -BE: B among switches that take no value.
			if strings.Contains(w, "B") {
				return true
			}
		}
	}
	return false
}

// longestGrace is the longest time a process gets between its stop signal
// and SIGKILL.
func (p *Plan) longestGrace() time.Duration {
	d := p.Stop.Timeout
	if len(p.Processes) > 0 {
		d = 0
	}
	for _, pr := range p.Processes {
		d = max(d, pr.StopTimeout)
	}
	return d
}

// exists reports whether a file is at path, relative to the working directory entry
// and its processes share.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
