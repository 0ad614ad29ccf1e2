package integration

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The files users copy (Dockerfile.example, examples/*.yaml) are checked against the
// binary: no Docker engine or cluster is needed, only what the files promise.

// dockerInstruction is one Dockerfile instruction after line continuations are joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

func parseDockerfileExample(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

// filesShellWords splits a shell command line into words, honouring quotes and backslashes;
// enough for a RUN line, which has no expansions here.
func filesShellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// dockerGoBuild is the `go build` command of the Dockerfile's builder stage.
type dockerGoBuild struct {
	env  []string // VAR=value words before "go"
	args []string // after "go build"
}

func dockerfileGoBuildCmd(t *testing.T, ins []dockerInstruction) dockerGoBuild {
	t.Helper()
	for _, in := range ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words, err := filesShellWords(in.args)
		if err != nil {
			t.Fatalf("line %d: %v", in.line, err)
		}
		var b dockerGoBuild
		for len(words) > 0 && strings.Contains(words[0], "=") {
			b.env, words = append(b.env, words[0]), words[1:]
		}
		if len(words) < 2 || words[0] != "go" || words[1] != "build" {
			t.Fatalf("line %d: want [VAR=value...] go build ..., got %q", in.line, in.args)
		}
		b.args = words[2:]
		return b
	}
	t.Fatal("Dockerfile.example: no RUN ... go build")
	return dockerGoBuild{}
}

func TestDockerfileExample(t *testing.T) {
	path := filepath.Join(djangoModuleRoot(t), "Dockerfile.example")
	filesCheckVars(t, path)
	ins := parseDockerfileExample(t, path)

	// The base images are build arguments declared before the first FROM; their defaults
	// must be the public images.
	args := map[string]string{}
	var froms []dockerInstruction
	final := -1 // index of the last FROM
	for i, in := range ins {
		if in.cmd == "ARG" && len(froms) == 0 {
			name, value, _ := strings.Cut(in.args, "=")
			args[name] = value
		}
		if in.cmd == "FROM" {
			in.args = os.Expand(in.args, func(name string) string { return args[name] })
			froms = append(froms, in)
			final = i
		}
	}
	if len(froms) != 2 {
		t.Fatalf("got %d FROM lines, want 2 stages (Go builder, Django image)", len(froms))
	}
	if f := strings.Fields(froms[0].args); len(f) != 3 || !strings.HasPrefix(f[0], "golang:") || !strings.EqualFold(f[1], "AS") || f[2] != "build" {
		t.Errorf("first stage: got FROM %s, want FROM golang:<version> AS build", froms[0].args)
	}
	if !strings.HasPrefix(froms[1].args, "python:") {
		t.Errorf("final stage: got FROM %s, want a python image", froms[1].args)
	}

	b := dockerfileGoBuildCmd(t, ins)
	if !slices.Contains(b.env, "CGO_ENABLED=0") {
		t.Errorf("go build env: got %q, want CGO_ENABLED=0", b.env)
	}
	for _, want := range [][]string{{"-trimpath"}, {"-ldflags", "-s -w"}, {"-o", "/entry"}, {"./cmd/entry"}} {
		if !filesContainsWords(b.args, want) {
			t.Errorf("go build args: got %q, want %q in them", b.args, want)
		}
	}

	var user, entrypoint, cmd []string
	copied, healthcheck := false, false
	for _, in := range ins[final:] {
		switch in.cmd {
		case "HEALTHCHECK":
			// `entry health`, in exec form: the image needs no curl, no Python, no shell.
			healthcheck = strings.HasSuffix(in.args, `CMD ["/entry", "health"]`)
		case "USER":
			user = strings.Fields(in.args)
		case "ENTRYPOINT":
			entrypoint = dockerExecForm(t, in)
		case "CMD":
			cmd = dockerExecForm(t, in)
		case "COPY":
			if f := strings.Fields(in.args); slices.Equal(f, []string{"--from=build", "/entry", "/entry"}) {
				copied = true
			}
		}
	}
	if !copied {
		t.Error("final stage: no COPY --from=build /entry /entry")
	}
	if !healthcheck {
		t.Error(`final stage: no HEALTHCHECK ... CMD ["/entry", "health"]`)
	}
	if !slices.Equal(entrypoint, []string{"/entry"}) {
		t.Errorf("ENTRYPOINT: got %q, want exec form [\"/entry\"]", entrypoint)
	}
	if cmd == nil {
		t.Error("final stage: no exec-form CMD (the base image's CMD would become entry's command)")
	}
	if len(user) != 1 {
		t.Fatalf("final stage: got USER %q, want one non-root user", user)
	}
	if name, _, _ := strings.Cut(user[0], ":"); name == "root" || name == "0" {
		t.Errorf("final stage: got USER %s, want a non-root user", user[0])
	}
}

// filesContainsWords reports whether want occurs in args as consecutive words.
func filesContainsWords(args, want []string) bool {
	for i := range args {
		if i+len(want) <= len(args) && slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// dockerExecForm decodes an exec-form (JSON array) instruction and fails on the shell form,
// which would make /bin/sh PID 1.
func dockerExecForm(t *testing.T, in dockerInstruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Errorf("line %d: %s %s is not exec form: %v", in.line, in.cmd, in.args, err)
		return nil
	}
	if v == nil {
		v = []string{}
	}
	return v
}

// TestDockerfileBinary builds cmd/entry exactly as the Dockerfile does and checks what
// the flags promise: a static, stripped binary that runs in an empty root.
func TestDockerfileBinary(t *testing.T) {
	b := dockerfileGoBuildCmd(t, parseDockerfileExample(t, filepath.Join(djangoModuleRoot(t), "Dockerfile.example")))
	dir := t.TempDir()
	bin := filepath.Join(dir, "entry")
	args := slices.Clone(b.args)
	for i := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = bin
		}
	}
	build := exec.Command("go", append([]string{"build"}, args...)...)
	build.Dir = djangoModuleRoot(t)
	build.Env = append(os.Environ(), b.env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has PT_INTERP: it needs a dynamic loader")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("DT_NEEDED: got %q (err %v), want none", libs, err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("binary has section %s: -ldflags \"-s -w\" not applied", s.Name)
		}
	}
	if bi, err := exec.Command("go", "version", "-m", bin).Output(); err != nil {
		t.Errorf("go version -m: %v", err)
	} else if !bytes.Contains(bi, []byte("-trimpath=true")) || !bytes.Contains(bi, []byte("CGO_ENABLED=0")) {
		t.Errorf("build info lacks -trimpath=true or CGO_ENABLED=0:\n%s", bi)
	}

	// An empty root: no libc, no /etc, no /proc, no /dev, no shell.
	root := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "entry"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, 0},
		{[]string{"--", "/nonexistent"}, 127},
	} {
		cmd := exec.Command("/entry", tc.args...)
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("chroot entry %q: %v", tc.args, err)
		}
		if got := cmd.ProcessState.ExitCode(); got != tc.want {
			t.Errorf("chroot entry %q: got exit %d, want %d\n%s", tc.args, got, tc.want, out)
		}
	}
}

// filesLoadYAML decodes every document of a YAML file with Debian's python3-yaml: go.mod has
// no YAML library, and a hand-written parser would not see what Compose sees (anchors,
// merge keys, flow style).
func filesLoadYAML(t *testing.T, path string) []any {
	t.Helper()
	const prog = `import json, sys, yaml
with open(sys.argv[1]) as f:
    json.dump(list(yaml.safe_load_all(f)), sys.stdout)`
	out, err := exec.Command("/usr/bin/python3", "-c", prog, path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("parse %s: %v\n%s", path, err, ee.Stderr)
		}
		t.Fatalf("parse %s: %v", path, err)
	}
	var docs []any
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

var filesEntryVarRE = regexp.MustCompile(`ENTRY_[A-Z0-9_]+`)

// filesCheckVars checks every ENTRY_* name in a file against `entry help`. Per-type names
// such as ENTRY_STOP_SIGNAL_NGINX match help's ENTRY_STOP_SIGNAL_<TYPE>.
func filesCheckVars(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command(entryBin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("entry help: %v\n%s", err, out)
	}
	help := string(out)
	if !strings.Contains(help, "ENTRY_STOP_SIGNAL_<TYPE>") {
		t.Errorf("entry help does not document ENTRY_STOP_SIGNAL_<TYPE>")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range filesEntryVarRE.FindAllString(string(b), -1) {
		if regexp.MustCompile(`\b` + name + `\b`).MatchString(help) {
			continue
		}
		if strings.HasPrefix(name, "ENTRY_STOP_SIGNAL_") {
			continue
		}
		t.Errorf("%s uses %s, which entry help does not list", filepath.Base(path), name)
	}
}

// filesHealthPort is the port of an ENTRY_HEALTH_ADDR value such as ":8081".
func filesHealthPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("ENTRY_HEALTH_ADDR %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("ENTRY_HEALTH_ADDR %q: %v", addr, err)
	}
	return n
}

// filesDefaultStopTimeout is ENTRY_STOP_TIMEOUT's default (SPEC: fits docker stop's 10 s).
const filesDefaultStopTimeout = 8 * time.Second

func TestComposeExample(t *testing.T) {
	path := filepath.Join(djangoModuleRoot(t), "examples", "compose.yaml")
	filesCheckVars(t, path)
	docs := filesLoadYAML(t, path)
	if len(docs) != 1 {
		t.Fatalf("got %d YAML documents, want 1", len(docs))
	}
	services, _ := docs[0].(map[string]any)["services"].(map[string]any)
	for _, name := range []string{"web", "worker", "beat", "postgres", "rabbitmq", "redis", "elasticsearch", "nginx"} {
		if _, ok := services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}

	esWaited := false
	for name, v := range services {
		svc := v.(map[string]any)
		env := composeEnv(t, svc["environment"])
		if _, ok := env["ENTRY_PROCESSES"]; !ok {
			continue // not an entry service
		}
		if b, ok := svc["build"].(map[string]any); ok {
			df := filepath.Join(djangoModuleRoot(t), "examples", fmt.Sprint(b["context"]), fmt.Sprint(b["dockerfile"]))
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: build: %v", name, err)
			}
		}

		stop := filesDefaultStopTimeout
		if s, ok := env["ENTRY_STOP_TIMEOUT"]; ok {
			stop = filesDuration(t, name+" ENTRY_STOP_TIMEOUT", s)
		}
		grace := 10 * time.Second // Compose's default
		if s, ok := svc["stop_grace_period"].(string); ok {
			grace = filesDuration(t, name+" stop_grace_period", s)
		}
		if grace <= stop {
			t.Errorf("%s: stop_grace_period %v <= ENTRY_STOP_TIMEOUT %v: compose kills entry before its own SIGKILL deadline", name, grace, stop)
		}

		if addr, ok := env["ENTRY_HEALTH_ADDR"]; ok {
			port := filesHealthPort(t, addr)
			hc, _ := svc["healthcheck"].(map[string]any)
			test := fmt.Sprint(hc["test"])
			// `entry health` asks ENTRY_HEALTH_ADDR itself; anything else must name its port.
			re := regexp.MustCompile(`(127\.0\.0\.1|localhost):` + strconv.Itoa(port) + `/(livez|readyz)\b`)
			if test != "[CMD /entry health]" && !re.MatchString(test) {
				t.Errorf("%s: healthcheck %s is not entry health and does not probe /livez or /readyz on ENTRY_HEALTH_ADDR's port %d", name, test, port)
			}
		}

		for _, w := range strings.FieldsFunc(env["ENTRY_WAIT"], func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			u, err := url.Parse(w)
			if err != nil {
				t.Errorf("%s: ENTRY_WAIT %q: %v", name, w, err)
				continue
			}
			if u.Hostname() == "elasticsearch" && u.Path == "/_cluster/health" {
				esWaited = true
			}
		}
		for k, v := range env {
			if filesURLHasPassword(v) {
				t.Errorf("%s: %s holds a URL with a password; use a *_FILE secret", name, k)
			}
		}
	}
	if !esWaited {
		t.Error("no entry service waits for http://elasticsearch:9200/_cluster/health")
	}
}

// composeEnv reads a service's environment in either of Compose's forms.
func composeEnv(t *testing.T, v any) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := v.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	default:
		t.Fatalf("environment: unexpected %T", v)
	}
	return env
}

func filesDuration(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return d
}

// filesURLHasPassword reports a URL with credentials in it, which belongs in a secret file.
func filesURLHasPassword(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// k8sContainer is the part of a Deployment's container the checks look at.
type k8sContainer struct {
	Name string `json:"name"`
	Env  []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	StartupProbe   *k8sProbe `json:"startupProbe"`
	LivenessProbe  *k8sProbe `json:"livenessProbe"`
	ReadinessProbe *k8sProbe `json:"readinessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Sleep *struct {
				Seconds int `json:"seconds"`
			} `json:"sleep"`
		} `json:"preStop"`
	} `json:"lifecycle"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"` // a number or a port name
	} `json:"httpGet"`
}

type k8sObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds *int           `json:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `json:"containers"`
				Volumes                       []struct {
					Name   string `json:"name"`
					Secret *struct {
						SecretName string `json:"secretName"`
					} `json:"secret"`
				} `json:"volumes"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func TestK8sExample(t *testing.T) {
	path := filepath.Join(djangoModuleRoot(t), "examples", "k8s.yaml")
	filesCheckVars(t, path)
	var deployments int
	probed, readied := false, false
	for _, doc := range filesLoadYAML(t, path) {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		var obj k8sObject
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind != "Deployment" {
			continue
		}
		deployments++
		pod := obj.Spec.Template.Spec
		grace := 30 * time.Second // Kubernetes' default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
		}
		secretVolumes := map[string]bool{}
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				secretVolumes[v.Name] = true
			}
		}
		for _, c := range pod.Containers {
			where := obj.Metadata.Name + "/" + c.Name
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if len(env) == 0 {
				t.Errorf("%s: no environment", where)
			}

			stop := filesDefaultStopTimeout
			if s, ok := env["ENTRY_STOP_TIMEOUT"]; ok {
				stop = filesDuration(t, where+" ENTRY_STOP_TIMEOUT", s)
			}
			// The grace period also covers a preStop hook and entry's shutdown delay.
			if s := c.Lifecycle.PreStop.Sleep; s != nil {
				stop += time.Duration(s.Seconds) * time.Second
			}
			if s, ok := env["ENTRY_SHUTDOWN_DELAY"]; ok {
				stop += filesDuration(t, where+" ENTRY_SHUTDOWN_DELAY", s)
			}
			if grace <= stop {
				t.Errorf("%s: terminationGracePeriodSeconds %v <= preStop + ENTRY_SHUTDOWN_DELAY + ENTRY_STOP_TIMEOUT %v", where, grace, stop)
			}
			if s, ok := env["ENTRY_STOP_BUDGET"]; ok && filesDuration(t, where+" ENTRY_STOP_BUDGET", s) != grace {
				t.Errorf("%s: ENTRY_STOP_BUDGET %s is not terminationGracePeriodSeconds %v", where, s, grace)
			}

			if addr, ok := env["ENTRY_HEALTH_ADDR"]; ok {
				port := filesHealthPort(t, addr)
				for _, p := range []struct {
					name  string
					probe *k8sProbe
					paths []string
				}{
					{"startupProbe", c.StartupProbe, []string{"/livez"}},
					{"livenessProbe", c.LivenessProbe, []string{"/livez"}},
					{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}},
				} {
					if p.probe == nil {
						continue
					}
					probed = true
					readied = readied || p.name == "readinessProbe"
					if p.probe.HTTPGet == nil {
						t.Errorf("%s: %s is not httpGet", where, p.name)
						continue
					}
					if !slices.Contains(p.paths, p.probe.HTTPGet.Path) {
						t.Errorf("%s: %s path %q, want one of %q", where, p.name, p.probe.HTTPGet.Path, p.paths)
					}
					if got := probePort(c, p.probe.HTTPGet.Port); got != port {
						t.Errorf("%s: %s port %v (%d), want ENTRY_HEALTH_ADDR's %d", where, p.name, p.probe.HTTPGet.Port, got, port)
					}
				}
				if c.LivenessProbe == nil {
					t.Errorf("%s: ENTRY_HEALTH_ADDR set but no livenessProbe", where)
				}
			}

			for k, v := range env {
				if filesURLHasPassword(v) {
					t.Errorf("%s: %s holds a URL with a password; use a *_FILE secret", where, k)
				}
				if !strings.HasSuffix(k, "_FILE") {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if secretVolumes[m.Name] && strings.HasPrefix(v, m.MountPath+"/") {
						mounted = true
					}
				}
				if !mounted {
					t.Errorf("%s: %s=%s is not in a mounted secret volume", where, k, v)
				}
			}
		}
	}
	if deployments == 0 {
		t.Fatal("no Deployment")
	}
	if !probed || !readied {
		t.Errorf("got liveness probes %v, readiness probes %v on ENTRY_HEALTH_ADDR, want both", probed, readied)
	}
}

// probePort resolves a probe's port, a number or the name of a container port.
func probePort(c k8sContainer, port any) int {
	switch p := port.(type) {
	case float64:
		return int(p)
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return -1
}
