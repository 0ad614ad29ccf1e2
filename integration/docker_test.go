package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entry-dev/entry/internal/proctest"
	"github.com/entry-dev/entry/internal/throwaway"
)

// The Docker tier: Dockerfile.example built and run by a real Docker engine, and
// examples/compose.yaml run by docker-compose. There is no registry, so every base image
// is made here from Debian's packages (testdata/docker) and selected through the build
// arguments and variables the example files declare; nothing else in them changes.

// dockerDaemonFlags are enough for this machine: no iptables rules on the host and no
// default bridge; compose makes its own bridge network.
var dockerDaemonFlags = []string{"--iptables=false", "--bridge=none"}

// dockerTestdata is integration/testdata/docker.
func dockerTestdata(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{djangoModuleRoot(t), "integration", "testdata", "docker"}, elem...)...)
}

// dockerCmd runs the docker CLI (or docker-compose) and returns its combined output.
func dockerCmd(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	// The legacy builder: the engine is 20.10 and no buildx plugin is installed.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0", "COMPOSE_DOCKER_CLI_BUILD=0")
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
		}
		return out.String(), nil
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s %s: not done after %v\n%s", name, strings.Join(args, " "), timeout, out)
	}
}

func docker(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := dockerCmd(t, timeout, "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerEngine makes sure a Docker engine answers; one it starts is stopped when the test
// ends, and dies with the test binary if that is killed first.
func dockerEngine(t *testing.T) {
	t.Helper()
	if _, err := dockerCmd(t, 30*time.Second, "docker", "info"); err == nil {
		return
	}
	logf, err := os.CreateTemp("", "dockerd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	// Pdeathsig is sent when the thread that started dockerd ends: keep it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("dockerd", dockerDaemonFlags...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("dockerd still running 60s after SIGTERM: killed")
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		os.Remove(logf.Name())
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := dockerCmd(t, 10*time.Second, "docker", "info"); err == nil {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited: %s\n%s", cmd.ProcessState, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd not answering after 60s\n%s", b)
		}
	}
}

// dockerHash is a short content hash of files and strings, the tag of a cached image.
func dockerHash(t *testing.T, files []string, extra ...string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(b))
		h.Write(b)
	}
	for _, s := range extra {
		fmt.Fprintf(h, "%s\x00", s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func dockerImageExists(t *testing.T, tag string) bool {
	t.Helper()
	_, err := dockerCmd(t, 30*time.Second, "docker", "image", "inspect", tag)
	return err == nil
}

// dockerImages are the images the subtests share.
type dockerImages struct {
	base   string // Debian with every package of packages.txt: python:3.12-slim's stand-in
	golang string // golang:1.26-bookworm's stand-in
	app    string // Dockerfile.example
}

// dockerBaseImage debootstraps the base image unless an image of the same package list is
// already there.
func dockerBaseImage(t *testing.T) string {
	t.Helper()
	tag := "entry-test/base:" + dockerHash(t, []string{dockerTestdata(t, "packages.txt"), dockerTestdata(t, "base.sh")})
	if dockerImageExists(t, tag) {
		return tag
	}
	start := time.Now()
	if out, err := dockerCmd(t, 20*time.Minute, dockerTestdata(t, "base.sh"), tag); err != nil {
		t.Fatalf("base image: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", tag, time.Since(start).Round(time.Second))
	return tag
}

// dockerGoImage adds this machine's Go toolchain and a file module proxy holding go.sum's
// modules to the base image.
func dockerGoImage(t *testing.T, base string) string {
	t.Helper()
	root := djangoModuleRoot(t)
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	version, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	tag := "entry-test/golang:" + dockerHash(t,
		[]string{filepath.Join(root, "go.sum"), dockerTestdata(t, "golang", "Dockerfile")},
		base, strings.TrimSpace(string(version)))
	if dockerImageExists(t, tag) {
		return tag
	}
	dl := exec.Command("go", "mod", "download")
	dl.Dir = root
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The build context, as a tar stream: the Dockerfile, GOROOT as go/ and the module
	// download cache as goproxy/.
	script := `tar -c -C "$1" Dockerfile -C "$(dirname "$2")" --transform "s,^$(basename "$2"),go," "$(basename "$2")" ` +
		`-C "$3" --transform 's,^download,goproxy,' download | docker build -q --build-arg BASE="$4" -t "$5" -`
	start := time.Now()
	if out, err := dockerCmd(t, 10*time.Minute, "sh", "-c", script, "sh",
		dockerTestdata(t, "golang"), strings.TrimSpace(string(goroot)),
		filepath.Join(strings.TrimSpace(string(modcache)), "cache"), base, tag); err != nil {
		t.Fatalf("golang image: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", tag, time.Since(start).Round(time.Second))
	return tag
}

// dockerBuildExample builds a Dockerfile (Dockerfile.example or a variant of it) with the
// local base images and the requirements the base image already satisfies.
func dockerBuildExample(t *testing.T, dockerfile, tag string, img dockerImages) (string, error) {
	t.Helper()
	return dockerCmd(t, 15*time.Minute, "docker", "build", "-q", "-f", dockerfile, "-t", tag,
		"--build-arg", "GO_IMAGE="+img.golang,
		"--build-arg", "PYTHON_IMAGE="+img.base,
		"--build-arg", "REQUIREMENTS=integration/testdata/docker/requirements.txt",
		djangoModuleRoot(t))
}

// dockerSetup starts the engine and builds the images once for every Docker test.
func dockerSetup(t *testing.T) dockerImages {
	t.Helper()
	dockerEngine(t)
	var img dockerImages
	img.base = dockerBaseImage(t)
	img.golang = dockerGoImage(t, img.base)
	img.app = "entry-test/djangoapp:latest"
	start := time.Now()
	if out, err := dockerBuildExample(t, filepath.Join(djangoModuleRoot(t), "Dockerfile.example"), img.app, img); err != nil {
		t.Fatalf("Dockerfile.example: %v\n%s", err, out)
	}
	t.Logf("built Dockerfile.example in %v", time.Since(start).Round(time.Second))
	return img
}

// dockerContainer is one `docker run` attached to the test: its output and exit status
// are the container's.
type dockerContainer struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *proctest.Buffer
	done chan struct{}
}

// dockerRun starts `docker run --name NAME opts... image args...` in the foreground.
func dockerRun(t *testing.T, opts []string, image string, args ...string) *dockerContainer {
	t.Helper()
	c := &dockerContainer{t: t, name: throwaway.Name("entry-test"), out: &proctest.Buffer{}, done: make(chan struct{})}
	argv := append([]string{"run", "--rm", "--name", c.name}, opts...)
	argv = append(append(argv, image), args...)
	c.cmd = exec.Command("docker", argv...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			dockerCmd(t, 60*time.Second, "docker", "rm", "-f", c.name)
			<-c.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", c.name, c.out)
		}
	})
	return c
}

// wait returns the container's exit status, failing the test after d.
func (c *dockerContainer) wait(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		c.t.Fatalf("container %s still running after %v", c.name, d)
		return -1
	}
}

// celeryUp waits until beat has sent its every-second tick and the worker has run one. A
// celery process stopped while it still starts misbehaves by itself (celery 5.2: beat dies
// of a half-done import, a worker in warm shutdown can hang), which says nothing of entry's
// stop; the graceful stop is checked on processes that are up.
func (c *dockerContainer) celeryUp(d time.Duration) error {
	for _, s := range []string{"Sending due task tick", "shop.tasks.tick["} {
		if !c.out.Await(s, d) {
			return fmt.Errorf("celery not up: no %q in the output after %v", s, d)
		}
	}
	if !c.out.Await("succeeded in", d) {
		return fmt.Errorf("celery not up: the worker ran no task in %v", d)
	}
	return nil
}

// waitHTTP waits for a 200 from url, failing at once if the container ends.
func (c *dockerContainer) waitHTTP(url string, d time.Duration) {
	c.t.Helper()
	if err := c.tryHTTP(url, d); err != nil {
		c.t.Fatal(err)
	}
}

func (c *dockerContainer) tryHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		code, err := djangoGet(url, nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("container exited with %d before %s answered 200", c.cmd.ProcessState.ExitCode(), url)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no 200 after %v (last: %d %v)", url, d, code, err)
		}
	}
}

// dockerAppOpts runs the image on the host network against this machine's services, on
// fresh ports, a fresh database and a queue of its own.
func dockerAppOpts(t *testing.T) (opts []string, a *djangoApp, dbURL, health string) {
	t.Helper()
	a = newDjangoApp(t)
	dbURL = a.useLocalServices(t)
	health = throwaway.FreeAddr(t)
	a.env["ENTRY_HEALTH_ADDR"] = health
	a.env["ENTRY_LOG_FORMAT"] = "text"
	a.env["DJANGOAPP_BEAT_SCHEDULE"] = "/tmp/celerybeat-schedule"
	opts = []string{"--network", "host"}
	for k, v := range a.env {
		switch k {
		case "PATH", "HOME": // the image's own
			continue
		}
		opts = append(opts, "-e", k+"="+v)
	}
	return opts, a, dbURL, health
}

// dockerStop runs `docker stop` (SIGTERM, SIGKILL after Docker's 10 s) and returns how
// long it took and the container's exit status.
func (c *dockerContainer) stop() (time.Duration, int) {
	c.t.Helper()
	start := time.Now()
	docker(c.t, 60*time.Second, "stop", c.name)
	took := time.Since(start)
	return took, c.wait(30 * time.Second)
}

func TestDocker(t *testing.T) {
	img := dockerSetup(t)

	// `docker run` in Procfile mode: wait, migrate under the lock, web, worker and beat up,
	// / and /readyz answer, a task goes through RabbitMQ; `docker stop` stops everything
	// gracefully with status 0 well inside Docker's 10 s.
	t.Run("ProcfileAndStop", func(t *testing.T) {
		opts, a, dbURL, health := dockerAppOpts(t)
		c := dockerRun(t, opts, img.app)
		c.waitHTTP("http://"+a.web+"/", 120*time.Second)
		c.waitHTTP("http://"+health+"/readyz", 30*time.Second)
		if code, err := djangoGet("http://"+a.web+"/db/", nil); err != nil || code != http.StatusOK {
			t.Fatalf("/db/: %d %v", code, err)
		}
		token := throwaway.Name("docker")
		if code, err := djangoGet("http://"+a.web+"/enqueue/?token="+token, nil); err != nil || code != http.StatusOK {
			t.Fatalf("enqueue: %d %v", code, err)
		}
		djangoWaitMark(t, dbURL, token, "done", 60*time.Second)
		out := c.out.String()
		for _, want := range []string{"all dependencies ready", "release lock acquired", "Applying shop.0002_item_price",
			"release step done step=release status=0", "process started process=web.1",
			"process started process=worker.1", "process started process=beat.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		took, status := c.stop()
		if status != 0 {
			t.Errorf("docker stop: exit %d, want 0", status)
		}
		if took >= 10*time.Second {
			t.Errorf("docker stop took %v: Docker's SIGKILL, not a graceful stop", took)
		}
		t.Logf("docker stop: %v, exit %d", took.Round(time.Millisecond), status)
		dockerNoSIGKILL(t, c.out.String())
	})

	// HUP, TTIN and USR1 from `docker kill -s` reach gunicorn, the main process.
	t.Run("KillSignals", func(t *testing.T) {
		opts, a, _, _ := dockerAppOpts(t)
		opts = append(opts, "-e", "ENTRY_SKIP_RELEASE=true", "-e", "DJANGOAPP_WEB_WORKERS=1")
		c := dockerRun(t, opts, img.app, "python3", "-m", "gunicorn", "djangoapp.wsgi")
		c.waitHTTP("http://"+a.web+"/", 60*time.Second)
		for _, s := range []struct{ sig, want string }{
			{"TTIN", "Handling signal: ttin"},
			{"HUP", "Handling signal: hup"},
			{"USR1", "Handling signal: usr1"},
		} {
			docker(t, 30*time.Second, "kill", "-s", s.sig, c.name)
			c.out.WaitFor(t, s.want, 20*time.Second)
		}
		c.waitHTTP("http://"+a.web+"/", 30*time.Second)
		if _, status := c.stop(); status != 0 {
			t.Errorf("docker stop: exit %d, want 0", status)
		}
	})

	// `docker run -it … python3 manage.py shell` through a real terminal: the shell gets
	// it, Ctrl-C interrupts the line being typed (not entry), and exit() ends the container
	// with status 0.
	t.Run("InteractiveShell", func(t *testing.T) {
		name := throwaway.Name("entry-test")
		t.Cleanup(func() { dockerCmd(t, 60*time.Second, "docker", "rm", "-f", name) })
		term := pid1StartTerminal(t, nil, "script", "-qec", strings.Join([]string{
			"docker run -it --rm --name", name, "--network host",
			"-e DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres -e ENTRY_SKIP_RELEASE=true",
			img.app, "python3 manage.py shell"}, " "), "/dev/null")
		term.expect(`>>> `, 60*time.Second)
		term.write("print('an' + 'swer', 6 * 7)\r")
		term.expect(`answer 42`, 20*time.Second)
		term.expect(`>>> `, 10*time.Second)
		term.write("while True: pass\r")
		term.expect(`\.\.\. `, 10*time.Second)
		term.write("\r")
		term.write("\x03")
		term.expect(`KeyboardInterrupt[\s\S]*>>> `, 20*time.Second)
		term.write("exit()\r")
		if status := term.wait(30 * time.Second); status != 0 {
			t.Errorf("status %d, want 0", status)
		}
		if out := term.out.String(); strings.Contains(out, "stopping") {
			t.Errorf("Ctrl-C reached entry\n%s", out)
		}
	})

	// Under `docker run --init` entry is PID 2 below docker-init: the main process's exit
	// status comes out as the container's.
	t.Run("InitExitStatus", func(t *testing.T) {
		c := dockerRun(t, []string{"--init", "--network", "none", "-e", "ENTRY_SKIP_RELEASE=true"},
			img.app, "sh", "-c", "exit 7")
		if status := c.wait(60 * time.Second); status != 7 {
			t.Errorf("exit %d, want 7", status)
		}
	})

	// docker-init forwards every signal to entry, real-time ones included: entry passes
	// SIGRTMIN (34) on to the main process and keeps running.
	t.Run("InitRealtimeSignal", func(t *testing.T) {
		const prog = `import signal, sys
signal.signal(34, lambda *_: print("got 34", flush=True))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
while True:
    signal.pause()`
		c := dockerRun(t, []string{"--init", "--network", "none", "-e", "ENTRY_SKIP_RELEASE=true"},
			img.app, "python3", "-c", prog)
		c.out.WaitFor(t, "ready", 60*time.Second)
		docker(t, 30*time.Second, "kill", "-s", "34", c.name)
		deadline := time.After(20 * time.Second)
		for !strings.Contains(c.out.String(), "got 34") {
			select {
			case <-c.done:
				t.Fatalf("signal 34 ended the container: exit %d", c.cmd.ProcessState.ExitCode())
			case <-deadline:
				t.Fatal("signal 34 did not reach the main process within 20s")
			case <-time.After(20 * time.Millisecond):
			}
		}
		if _, status := c.stop(); status != 0 {
			t.Errorf("docker stop: exit %d, want 0", status)
		}
	})

	// `docker run -it` in Procfile mode with the release line: Ctrl-C stops the whole
	// formation, as SIGINT does without a terminal.
	t.Run("InteractiveProcfileCtrlC", func(t *testing.T) {
		opts, a, _, _ := dockerAppOpts(t)
		name := throwaway.Name("entry-test")
		t.Cleanup(func() { dockerCmd(t, 60*time.Second, "docker", "rm", "-f", name) })
		line := "docker run -it --rm --name " + name + " " + dockerShellQuote(opts) + " " + img.app
		term := pid1StartTerminal(t, nil, "script", "-qec", line, "/dev/null")
		deadline := time.Now().Add(120 * time.Second)
		for {
			if code, err := djangoGet("http://"+a.web+"/", nil); err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("web not up after 120s\n%s", term.out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		term.write("\x03")
		status := term.wait(10 * time.Second) // Docker's own stop grace
		t.Logf("Ctrl-C: stopped in %v, status %d", time.Since(start).Round(time.Millisecond), status)
	})

	// The locked-down form: read-only root, /tmp on tmpfs, no capabilities, no new
	// privileges, uid 10001, Docker's default seccomp profile. Procfile mode still works
	// and stops gracefully.
	t.Run("LockedDown", func(t *testing.T) {
		opts, a, _, health := dockerAppOpts(t)
		opts = append(opts, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
			"--security-opt", "no-new-privileges", "--user", "10001:10001")
		c := dockerRun(t, opts, img.app)
		c.waitHTTP("http://"+a.web+"/", 120*time.Second)
		c.waitHTTP("http://"+health+"/readyz", 30*time.Second)
		if err := c.celeryUp(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		status := docker(t, 30*time.Second, "exec", c.name, "cat", "/proc/1/status")
		for _, want := range []string{"Uid:\t10001\t10001\t10001\t10001", "CapEff:\t0000000000000000",
			"NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(status, want) {
				t.Errorf("PID 1 status lacks %q:\n%s", want, status)
			}
		}
		if cmdline := docker(t, 30*time.Second, "exec", c.name, "cat", "/proc/1/cmdline"); cmdline != "/entry\x00" {
			t.Errorf("PID 1 is %q, want /entry", cmdline)
		}
		took, exit := c.stop()
		if exit != 0 || took >= 10*time.Second {
			t.Errorf("docker stop: exit %d after %v, want 0 within 10s", exit, took)
		}
		dockerNoSIGKILL(t, c.out.String())
	})

	t.Run("Compose", func(t *testing.T) { dockerComposeExample(t, img) })

	// Kubernetes cannot run here: what examples/k8s.yaml relies on is checked in the image
	// instead. Each container's probes get what they expect from entry on the port they
	// name (/livez 200 while entry is still waiting for its dependencies, /readyz 503), and
	// the container stops well within the grace left after preStop (TestK8sExample checks
	// the arithmetic).
	t.Run("K8sProbes", func(t *testing.T) { dockerK8sProbes(t, img) })

	// The shell form of ENTRYPOINT is caught: `docker run IMAGE command` no longer runs
	// the command. Removing `CMD []` is harmless, and the test pins why: Docker clears the
	// base image's CMD ["python3"] when a Dockerfile sets ENTRYPOINT, so the variant has no
	// command and passes the same checks.
	t.Run("MutatedDockerfiles", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(djangoModuleRoot(t), "Dockerfile.example"))
		if err != nil {
			t.Fatal(err)
		}
		if err := dockerCheckImage(t, img.app); err != nil {
			t.Fatalf("Dockerfile.example fails the checks: %v", err)
		}
		for _, m := range []struct {
			name, from, to string
			fails          bool
		}{
			{"shell-form-entrypoint", "\nENTRYPOINT [\"/entry\"]\n", "\nENTRYPOINT /entry\n", true},
			{"no-empty-cmd", "\nCMD []\n", "\n", false},
		} {
			t.Run(m.name, func(t *testing.T) {
				if !strings.Contains(string(src), m.from) {
					t.Fatalf("Dockerfile.example has no %q", m.from)
				}
				df := filepath.Join(t.TempDir(), "Dockerfile")
				if err := os.WriteFile(df, []byte(strings.Replace(string(src), m.from, m.to, 1)), 0o644); err != nil {
					t.Fatal(err)
				}
				tag := "entry-test/mutant:" + m.name
				if out, err := dockerBuildExample(t, df, tag, img); err != nil {
					t.Fatalf("build: %v\n%s", err, out)
				}
				t.Cleanup(func() { dockerCmd(t, 60*time.Second, "docker", "rmi", "-f", tag) })
				err := dockerCheckImage(t, tag)
				switch {
				case m.fails && err == nil:
					t.Errorf("the %s variant passes the checks", m.name)
				case m.fails:
					t.Logf("the %s variant fails as it should: %v", m.name, err)
				case err != nil:
					t.Errorf("the %s variant fails: %v", m.name, err)
				}
				if !m.fails {
					if cmd := strings.TrimSpace(docker(t, 30*time.Second, "inspect", "-f", "{{json .Config.Cmd}}", tag)); cmd != "null" && cmd != "[]" {
						t.Errorf("the %s variant has CMD %s, want none", m.name, cmd)
					}
				}
			})
		}
	})
}

// dockerCheckImage is what a mutated Dockerfile must fail: a command is run as given with
// its exit status passed through, and with no command the Procfile is run and stopped
// gracefully by `docker stop`.
func dockerCheckImage(t *testing.T, image string) error {
	t.Helper()
	cmd := dockerRun(t, []string{"--network", "none", "-e", "ENTRY_SKIP_RELEASE=true"}, image, "sh", "-c", "exit 7")
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case <-cmd.done:
			break wait
		case <-deadline:
			return errors.New("sh -c 'exit 7' still running after 60s")
		case <-time.After(20 * time.Millisecond):
		}
		if strings.Contains(cmd.out.String(), "process started process=web.1") {
			return errors.New("sh -c 'exit 7' was not run: the Procfile's processes started instead")
		}
	}
	if s := cmd.cmd.ProcessState.ExitCode(); s != 7 {
		return fmt.Errorf("sh -c 'exit 7' gave %d: the command was not run as given", s)
	}
	opts, a, _, _ := dockerAppOpts(t)
	c := dockerRun(t, opts, image)
	if err := c.tryHTTP("http://"+a.web+"/", 120*time.Second); err != nil {
		return fmt.Errorf("Procfile mode: %v", err)
	}
	if err := c.celeryUp(60 * time.Second); err != nil {
		return fmt.Errorf("Procfile mode: %v", err)
	}
	took, status := c.stop()
	if status != 0 || took >= 10*time.Second {
		return fmt.Errorf("docker stop: exit %d after %v", status, took)
	}
	return nil
}

// dockerNoSIGKILL checks that entry never had to kill a process at the end of its grace.
func dockerNoSIGKILL(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "SIGKILL") || strings.Contains(out, "killed") {
		t.Errorf("a process was killed, not stopped:\n%s", out)
	}
}

// dockerShellQuote quotes words for the shell command line script runs.
func dockerShellQuote(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// dockerServiceImages builds the stand-ins of compose.yaml's public images from the base
// image (testdata/docker/<service>), as the environment that selects them.
func dockerServiceImages(t *testing.T, base string) []string {
	t.Helper()
	var env []string
	for _, svc := range []string{"postgres", "rabbitmq", "redis", "nginx", "elasticsearch"} {
		tag := "entry-test/" + svc + ":latest"
		if out, err := dockerCmd(t, 10*time.Minute, "docker", "build", "-q", "--build-arg", "BASE="+base,
			"-t", tag, dockerTestdata(t, svc)); err != nil {
			t.Fatalf("%s image: %v\n%s", svc, err, out)
		}
		env = append(env, strings.ToUpper(svc)+"_IMAGE="+tag)
	}
	return env
}

// dockerCompose runs docker-compose on examples/compose.yaml as project p with env.
func dockerCompose(t *testing.T, p string, env []string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("docker-compose", append([]string{"-p", p, "-f",
		filepath.Join(djangoModuleRoot(t), "examples", "compose.yaml")}, args...)...)
	cmd.Env = append(append(os.Environ(), "DOCKER_BUILDKIT=0", "COMPOSE_DOCKER_CLI_BUILD=0"), env...)
	out := &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return out.String(), nil
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("docker-compose %s: not done after %v\n%s", strings.Join(args, " "), timeout, out)
	}
}

// dockerProjectContainers lists a compose project's containers (running or not) of one
// service, or of all with service "".
func dockerProjectContainers(t *testing.T, p, service string) []string {
	t.Helper()
	args := []string{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + p}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	return strings.Fields(docker(t, 30*time.Second, args...))
}

// dockerWaitHealthy waits until every container of the service reports healthy.
func dockerWaitHealthy(t *testing.T, p, service string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ids := dockerProjectContainers(t, p, service)
		healthy := 0
		var states []string
		for _, id := range ids {
			s := strings.TrimSpace(docker(t, 30*time.Second, "inspect", "-f", "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}", id))
			states = append(states, s)
			if s == "running/healthy" {
				healthy++
			}
		}
		if len(ids) == n && healthy == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d containers healthy after %v: %v", service, healthy, n, d, states)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// examples/compose.yaml as a user runs it, over the local stand-ins: `up` until web is
// healthy and nginx started, a request through nginx, a task round trip, `up --scale
// web=3` with the migration applied once, and `down` leaving nothing behind.
func dockerComposeExample(t *testing.T, img dockerImages) {
	env := append(dockerServiceImages(t, img.base), "DJANGOAPP_IMAGE="+img.app)
	nginx := throwaway.FreeAddr(t)
	_, port, _ := strings.Cut(nginx, ":")
	const password = "cOmpose-S3cret"
	env = append(env, "NGINX_PORT="+port, "RABBITMQ_PASSWORD="+password)

	secrets := filepath.Join(djangoModuleRoot(t), "examples", "secrets")
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secrets) })
	for name, value := range map[string]string{
		"postgres_password": password,
		"broker_url":        "amqp://app:" + password + "@rabbitmq:5672//",
	} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := throwaway.Name("entrytest")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := dockerCompose(t, p, env, 2*time.Minute, "logs", "--no-color")
			t.Logf("compose logs:\n%s", out)
		}
		// Whatever happened, nothing of the project stays behind.
		dockerCompose(t, p, env, 3*time.Minute, "down", "-v", "--remove-orphans", "-t", "30")
	})

	start := time.Now()
	if out, err := dockerCompose(t, p, env, 5*time.Minute, "up", "-d", "--no-build"); err != nil {
		t.Fatal(err)
	} else if strings.Contains(out, password) {
		t.Errorf("compose output shows the password:\n%s", out)
	}
	dockerWaitHealthy(t, p, "web", 1, 3*time.Minute)
	t.Logf("compose up: web healthy after %v", time.Since(start).Round(time.Second))

	base := "http://" + nginx
	var ok struct{ OK bool }
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, err := djangoGet(base+"/", &ok)
		if err == nil && code == http.StatusOK && ok.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET / through nginx: %d %v", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	token := throwaway.Name("compose")
	if code, err := djangoGet(base+"/enqueue/?token="+token, nil); err != nil || code != http.StatusOK {
		t.Fatalf("enqueue through nginx: %d %v", code, err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		var r struct{ State *string }
		code, err := djangoGet(base+"/result/?token="+token, &r)
		if err == nil && code == http.StatusOK && r.State != nil && *r.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not done after 60s: %d %v", token, code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if _, err := dockerCompose(t, p, env, 5*time.Minute, "up", "-d", "--no-build", "--scale", "web=3"); err != nil {
		t.Fatal(err)
	}
	dockerWaitHealthy(t, p, "web", 3, 3*time.Minute)
	logs, err := dockerCompose(t, p, env, 2*time.Minute, "logs", "--no-color")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs, "Applying shop.0001_initial"); n != 1 {
		t.Errorf("shop.0001_initial applied %d times, want once", n)
	}
	// Every entry container ran the release step under the lock: web ×3, worker, beat.
	if n := strings.Count(logs, "release step done"); n != 5 {
		t.Errorf("%d release steps done, want 5 (web ×3, worker, beat)", n)
	}
	if strings.Contains(logs, password) {
		t.Error("compose logs show the password")
	}

	if out, err := dockerCompose(t, p, env, 3*time.Minute, "down", "-v"); err != nil {
		t.Fatal(err)
	} else if strings.Contains(out, password) {
		t.Errorf("compose down output shows the password:\n%s", out)
	}
	if left := dockerProjectContainers(t, p, ""); len(left) != 0 {
		t.Errorf("containers left after down: %v", left)
	}
	if nets := strings.Fields(docker(t, 30*time.Second, "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+p)); len(nets) != 0 {
		t.Errorf("networks left after down: %v", nets)
	}
}

func dockerK8sProbes(t *testing.T, img dockerImages) {
	checked := 0
	for _, doc := range filesLoadYAML(t, filepath.Join(djangoModuleRoot(t), "examples", "k8s.yaml")) {
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
		for _, ctr := range obj.Spec.Template.Spec.Containers {
			probes := map[string]*k8sProbe{"startupProbe": ctr.StartupProbe, "livenessProbe": ctr.LivenessProbe, "readinessProbe": ctr.ReadinessProbe}
			// No network: entry stays in its wait for Postgres, where a pod spends a cold start.
			opts := []string{"--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
				"--security-opt", "no-new-privileges", "--user", "10001:10001",
				"-e", "DATABASE_URL=postgres://app@127.0.0.1:1/app", "-e", "ENTRY_WAIT_TIMEOUT=10m"}
			for _, e := range ctr.Env {
				// Dependencies are the cluster's names: replaced by a closed local port.
				if !strings.HasSuffix(e.Name, "_FILE") && e.Name != "REDIS_URL" {
					opts = append(opts, "-e", e.Name+"="+e.Value)
				}
			}
			c := dockerRun(t, opts, img.app)
			c.out.WaitFor(t, "dependency not ready", 60*time.Second)
			for name, p := range probes {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				want := 200
				if p.HTTPGet.Path == "/readyz" {
					want = 503
				}
				url := fmt.Sprintf("http://127.0.0.1:%d%s", probePort(ctr, p.HTTPGet.Port), p.HTTPGet.Path)
				code := strings.TrimSpace(docker(t, 30*time.Second, "exec", c.name, "python3", "-c",
					"import sys, urllib.request, urllib.error\n"+
						"try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"+
						"except urllib.error.HTTPError as e: print(e.code)", url))
				if code != strconv.Itoa(want) {
					t.Errorf("%s/%s: %s %s answered %s, want %d", obj.Metadata.Name, ctr.Name, name, url, code, want)
				}
				checked++
			}
			took, _ := c.stop()
			grace := 30 * time.Second
			if g := obj.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = time.Duration(*g) * time.Second
			}
			if s := ctr.Lifecycle.PreStop.Sleep; s != nil {
				grace -= time.Duration(s.Seconds) * time.Second
			}
			if took >= grace {
				t.Errorf("%s/%s: stopped in %v, beyond the %v left after preStop", obj.Metadata.Name, ctr.Name, took, grace)
			}
		}
	}
	if checked == 0 {
		t.Error("no probe checked")
	}
}
