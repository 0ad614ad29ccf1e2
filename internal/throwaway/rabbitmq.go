package throwaway

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RabbitOptions configures NewRabbitMQ.
type RabbitOptions struct {
	User     string // default_user; default "app"
	Password string // default_pass; default "app"
	Vhost    string // default_vhost; default "/"
}

// RabbitMQ is a throwaway broker node with its own node name, ports, data
// and log directories, Erlang cookie (in a temporary HOME) and epmd. It does
// not touch the machine's own broker or epmd. Not running until Start; a
// node takes about five seconds to boot.
type RabbitMQ struct {
	server
	Port     int // AMQP
	DistPort int // Erlang distribution
	EPMDPort int
	Node     string // e.g. "throwaway-35871@localhost"
	Dir      string

	opts   RabbitOptions
	script string
	env    []string
	epmd   *proc
}

// NewRabbitMQ writes the node's configuration. The broker is not started.
func NewRabbitMQ(t testing.TB, opts RabbitOptions) *RabbitMQ {
	t.Helper()
	opts.User = cmp.Or(opts.User, "app")
	opts.Password = cmp.Or(opts.Password, "app")
	opts.Vhost = cmp.Or(opts.Vhost, "/")
	script, err := rabbitScript()
	if err != nil {
		t.Fatalf("throwaway rabbitmq: %v", err)
	}
	if _, err := exec.LookPath("epmd"); err != nil {
		t.Fatalf("throwaway rabbitmq: %v", err)
	}
	dir := t.TempDir()
	m := &RabbitMQ{Port: FreePort(t), DistPort: FreePort(t), EPMDPort: FreePort(t), Dir: dir, opts: opts, script: script}
	m.Node = fmt.Sprintf("throwaway-%d@localhost", m.Port)
	m.init(t, "rabbitmq", filepath.Join(dir, "rabbitmq.log"), func() {
		m.Stop()
		if m.epmd != nil {
			_ = m.epmd.stop(syscall.SIGTERM, 2*time.Second)
		}
	})

	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "mnesia"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("throwaway rabbitmq: %v", err)
		}
	}
	conf := strings.Join([]string{
		"default_user = " + opts.User,
		"default_pass = " + opts.Password,
		"default_vhost = " + opts.Vhost,
		"default_permissions.configure = .*",
		"default_permissions.read = .*",
		"default_permissions.write = .*",
		"loopback_users = none",
		"log.console = true",
		"log.console.level = warning",
		"log.file = false",
		"",
	}, "\n")
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "# empty: keep /etc/rabbitmq/rabbitmq-env.conf out\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("throwaway rabbitmq: %v", err)
		}
	}
	m.env = append(filteredEnv("RABBITMQ_", "ERL_"),
		"HOME="+home,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_NODENAME="+m.Node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(m.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(m.DistPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
		"ERL_EPMD_PORT="+strconv.Itoa(m.EPMDPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"),
		// Never let the node start an epmd (it would daemonise and outlive
		// the test); ours runs in the foreground under our control.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
		// Make the start script exec the Erlang VM instead of running it
		// in the background behind a signal-forwarding shell: our child
		// is then the VM itself, which SIGTERM stops gracefully and
		// Pdeathsig kills if the test binary dies.
		"RUNNING_UNDER_SYSTEMD=true",
	)
	return m
}

// rabbitScript finds the broker's start script. The Debian wrapper in
// /usr/sbin switches to the rabbitmq user and its fixed paths, so the real
// script is preferred.
func rabbitScript() (string, error) {
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("rabbitmq-server not found")
}

// filteredEnv is the current environment without variables that start with
// any of the prefixes.
func filteredEnv(prefixes ...string) []string {
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// Start launches the node (and its epmd, the first time) and returns at
// once, before the AMQP port opens.
func (m *RabbitMQ) Start() {
	m.t.Helper()
	if m.epmd == nil || m.epmd.exited() {
		p, err := startProc(procSpec{name: "epmd", path: mustLook("epmd"),
			args: []string{"-port", strconv.Itoa(m.EPMDPort), "-address", "127.0.0.1"},
			dir:  m.Dir, logPath: filepath.Join(m.Dir, "epmd.log")})
		if err != nil {
			m.t.Fatalf("throwaway rabbitmq: %v", err)
		}
		m.epmd = p
		m.mu.Lock()
		m.pgids = append(m.pgids, p.pid())
		m.mu.Unlock()
		if err := waitTCP(net.JoinHostPort("127.0.0.1", strconv.Itoa(m.EPMDPort)), p, 10*time.Second); err != nil {
			m.t.Fatalf("throwaway rabbitmq: epmd: %v", err)
		}
	}
	m.start(procSpec{name: "rabbitmq-server", path: m.script, env: m.env, dir: m.Dir, logPath: m.logPath})
}

func mustLook(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return name
	}
	return p
}

// WaitReady blocks until the AMQP port accepts connections, or fails the
// test. RabbitMQ opens it only when the broker has booted.
func (m *RabbitMQ) WaitReady(timeout time.Duration) {
	m.t.Helper()
	m.waitReady(m.Addr(), timeout, nil)
}

// StartAndWait is Start followed by WaitReady(60s).
func (m *RabbitMQ) StartAndWait() {
	m.t.Helper()
	m.Start()
	m.WaitReady(60 * time.Second)
}

// Stop shuts the node down gracefully and waits for it to exit. The VM
// turns SIGTERM into the broker's orderly stop (what rabbitmqctl stop does,
// without booting a second Erlang VM to ask for it); if that takes too long
// the process group is killed. epmd keeps running for a restart and is
// stopped at cleanup.
func (m *RabbitMQ) Stop() { m.stop(syscall.SIGTERM, 20*time.Second) }

// Addr is "127.0.0.1:port" of the AMQP listener.
func (m *RabbitMQ) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

// URL returns amqp://user:password@127.0.0.1:port/vhost ("/" is written
// %2F).
func (m *RabbitMQ) URL(user, password, vhost string) string {
	u := url.URL{Scheme: "amqp", Host: m.Addr(), User: url.UserPassword(user, password)}
	return u.String() + "/" + url.PathEscape(vhost)
}

// DefaultURL is URL with the configured user, password and vhost.
func (m *RabbitMQ) DefaultURL() string { return m.URL(m.opts.User, m.opts.Password, m.opts.Vhost) }
