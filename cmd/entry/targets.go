package main

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

type kind string

const (
	kindPostgres kind = "postgres"
	kindAMQP     kind = "amqp"
	kindRedis    kind = "redis"
	kindHTTP     kind = "http"
	kindTCP      kind = "tcp"
)

// dependency is one thing to wait for. url holds credentials and is handed only to the
// checker; target is the redacted form everything else prints.
type dependency struct {
	kind   kind
	source string // the variable it came from
	url    string
	target string
}

// rawURL is a URL split the way Python's urllib.parse.urlsplit splits it, which is how
// dj-database-url and kombu read DATABASE_URL and CELERY_BROKER_URL: the user part ends at the
// rightmost '@' of the authority, so an unencoded '@' in a password still works.
type rawURL struct {
	scheme           string
	user, pass       string
	hasUser, hasPass bool
	host, port       string
	path, query      string // path with its leading '/', still percent-encoded; query without '?'
}

func splitURL(s string) (*rawURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("not a URL (want scheme://host...)")
	}
	u := &rawURL{scheme: strings.ToLower(scheme)}
	for _, r := range u.scheme {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return nil, fmt.Errorf("invalid scheme")
		}
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 && strings.Contains(rest[i:], "@") {
		// urlsplit would cut the password here too; say so without showing any of it.
		return nil, fmt.Errorf("'/', '?' or '#' before the last '@': percent-encode them in the user name or password")
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	authority = rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	u.path, u.query, _ = strings.Cut(rest, "?")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if u.user, err = url.PathUnescape(user); err != nil {
			return nil, fmt.Errorf("invalid percent-encoding in the user name")
		}
		if u.pass, err = url.PathUnescape(pass); err != nil {
			// Say where, never what: this is the password.
			return nil, fmt.Errorf("invalid percent-encoding in the password")
		}
		u.hasUser, u.hasPass = true, hasPass
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return nil, fmt.Errorf("unclosed '[' in host")
		}
		host, port = authority[1:end], authority[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return nil, fmt.Errorf("unexpected text after ']'")
		}
		port = strings.TrimPrefix(port, ":")
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("invalid IPv6 address %q", host)
		}
	} else if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		host, port = authority[:i], authority[i+1:]
		if port == "" {
			return nil, fmt.Errorf("empty port after ':'")
		}
	}
	h, err := url.PathUnescape(host)
	if err != nil {
		return nil, fmt.Errorf("invalid percent-encoding in host %q", host)
	}
	u.host = h
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid port %q (want 1-65535)", port)
		}
	}
	u.port = port
	if strings.ContainsAny(u.host, " \t\r\n") {
		return nil, fmt.Errorf("invalid host %q", u.host)
	}
	return u, nil
}

// hostPort joins host and port, falling back to def, bracketing IPv6 literals.
func (u *rawURL) hostPort(def string) string {
	p := u.port
	if p == "" {
		p = def
	}
	return net.JoinHostPort(u.host, p)
}

// userinfo re-encodes the credentials so Go's strict parsers read them as Python did.
func (u *rawURL) userinfo() string {
	switch {
	case u.hasPass:
		return url.UserPassword(u.user, u.pass).String() + "@"
	case u.hasUser && u.user != "":
		return url.User(u.user).String() + "@"
	}
	return ""
}

// who is the redacted "user@" prefix of a printed target.
func (u *rawURL) who() string {
	if u.user == "" {
		return ""
	}
	return u.user + "@"
}

// schemeKind maps every scheme Django, dj-database-url, django-environ and kombu accept for a
// service entry can probe to the protocol it speaks.
func schemeKind(scheme string) (kind, bool) {
	switch scheme {
	case "postgres", "postgresql", "pgsql", "psql", "postgis", "timescale", "timescalegis", "cockroach":
		return kindPostgres, true
	case "amqp", "amqps", "pyamqp", "librabbitmq":
		return kindAMQP, true
	case "redis", "rediss":
		return kindRedis, true
	case "http", "https":
		return kindHTTP, true
	case "tcp":
		return kindTCP, true
	}
	return "", false
}

// libpqParams are the query parameters pgx understands; anything else in a Django URL
// (conn_max_age, conn_health_checks, ...) would be sent to the server as a startup parameter
// and refused with 42704, so it is dropped.
var libpqParams = map[string]bool{
	"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true, "sslpassword": true,
	"sslsni": true, "connect_timeout": true, "application_name": true, "options": true,
	"target_session_attrs": true, "channel_binding": true,
}

// parseDependency normalises one URL as its source variable gives it.
func parseDependency(source, s string) (dependency, error) {
	s = strings.TrimSpace(s)
	u, err := splitURL(s)
	if err != nil {
		return dependency{}, err
	}
	k, ok := schemeKind(u.scheme)
	if !ok {
		return dependency{}, fmt.Errorf("unsupported scheme %q (want postgres, amqp, redis, http, https or tcp)", u.scheme)
	}
	if u.host == "" {
		return dependency{}, fmt.Errorf("empty host")
	}
	d := dependency{kind: k, source: source}
	switch k {
	case kindPostgres:
		d.url, d.target, err = postgresDSN(u)
	case kindAMQP:
		scheme, port := "amqp", "5672"
		if u.scheme == "amqps" {
			scheme, port = "amqps", "5671"
		}
		vhost := u.path
		if vhost == "" {
			vhost = "/"
		}
		q := keepParams(u.query, "certfile", "keyfile", "cacertfile", "server_name_indication", "auth_mechanism")
		d.url = scheme + "://" + u.userinfo() + u.hostPort(port) + vhost + q
		d.target = scheme + "://" + u.who() + u.hostPort(port) + vhost
	case kindRedis:
		db := strings.Trim(u.path, "/")
		if db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return dependency{}, fmt.Errorf("invalid database number %q (want /0, /1, ...)", db)
			}
			db = "/" + db
		}
		q := keepParams(u.query, "ssl_cert_reqs")
		d.url = u.scheme + "://" + u.userinfo() + u.hostPort("6379") + db + q
		d.target = u.scheme + "://" + u.who() + u.hostPort("6379") + db
	case kindHTTP:
		// Go's parser is right here: HTTP URLs are not written by Python settings.
		pu, perr := url.Parse(s)
		if perr != nil {
			return dependency{}, fmt.Errorf("invalid URL")
		}
		d.url = s
		shown := *pu
		shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
		if pu.User != nil && pu.User.Username() != "" {
			shown.User = url.User(pu.User.Username())
		}
		d.target = shown.String()
	case kindTCP:
		if u.port == "" {
			return dependency{}, fmt.Errorf("tcp:// needs a port")
		}
		d.url = u.hostPort("")
		d.target = "tcp://" + d.url
	}
	if err != nil {
		return dependency{}, err
	}
	return d, nil
}

func keepParams(raw string, names ...string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	out := url.Values{}
	for _, n := range names {
		if v, ok := q[n]; ok {
			out[n] = v
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "?" + out.Encode()
}

// postgresDSN builds a keyword/value DSN for pgx: it takes unix-socket hosts, odd passwords
// and IPv6 without any URL re-encoding question.
func postgresDSN(u *rawURL) (dsn, target string, err error) {
	db, err := url.PathUnescape(strings.TrimPrefix(u.path, "/"))
	if err != nil {
		return "", "", fmt.Errorf("invalid percent-encoding in the database name")
	}
	port := u.port
	if port == "" {
		port = "5432"
	}
	kv := []string{"host=" + quoteDSN(u.host), "port=" + port}
	if u.user != "" {
		kv = append(kv, "user="+quoteDSN(u.user))
	}
	if u.hasPass {
		kv = append(kv, "password="+quoteDSN(u.pass))
	}
	if db != "" {
		kv = append(kv, "dbname="+quoteDSN(db))
	}
	if u.query != "" {
		q, qerr := url.ParseQuery(u.query)
		if qerr != nil {
			return "", "", fmt.Errorf("invalid query string")
		}
		for _, name := range slices.Sorted(maps.Keys(q)) {
			v := q.Get(name)
			switch {
			case name == "currentSchema":
				// dj-database-url's own translation of this JDBC-style parameter.
				kv = append(kv, "options="+quoteDSN("-c search_path="+v))
			case libpqParams[name]:
				kv = append(kv, name+"="+quoteDSN(v))
			}
		}
	}
	hp := net.JoinHostPort(u.host, port)
	if strings.HasPrefix(u.host, "/") { // a unix socket directory
		hp = u.host + ":" + port
	}
	target = "postgres://" + u.who() + hp + "/" + db
	return strings.Join(kv, " "), target, nil
}

func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// skippable reports schemes that name no network service entry can wait for.
func skippable(scheme string) bool {
	switch scheme {
	case "sqlite", "sqlite3", "spatialite", "memory", "locmem", "locmemcache", "dummy", "dummycache",
		"filesystem", "file", "filecache", "django", "django-db", "rpc", "cache", "db", "dbcache", "unix":
		return true
	}
	return false
}

// discover fills c.deps from ENTRY_WAIT(_FILE) and, unless ENTRY_DISCOVER=false, from the
// app's own settings variables, in the precedence Django and cookiecutter-django use.
func (c *config) discover(getenv func(string) string) error {
	wait, src, err := fileEnv(getenv, "ENTRY_WAIT")
	if err != nil {
		return err
	}
	for _, item := range splitList(wait) {
		d, err := parseDependency(src, item)
		if err != nil {
			return badVar(src, "%q: %v", redactItem(item), err)
		}
		c.add(d)
	}
	if !c.Discover {
		return nil
	}
	if err := c.discoverDatabase(getenv); err != nil {
		return err
	}
	for _, name := range []string{"CELERY_BROKER_URL", "REDIS_URL"} {
		v, src, err := fileEnv(getenv, name)
		if err != nil {
			return err
		}
		if v == "" {
			continue
		}
		if err := c.discoverURL(src, v, kindAMQP, kindRedis); err != nil {
			return err
		}
	}
	return nil
}

func (c *config) discoverDatabase(getenv func(string) string) error {
	v, src, err := fileEnv(getenv, "DATABASE_URL")
	if err != nil {
		return err
	}
	if v != "" {
		return c.discoverURL(src, v, kindPostgres)
	}
	// cookiecutter-django's settings build the URL from POSTGRES_* when DATABASE_URL is unset.
	host := getenv("POSTGRES_HOST")
	pass, _, err := fileEnv(getenv, "POSTGRES_PASSWORD")
	if err != nil {
		return err
	}
	user, _, err := fileEnv(getenv, "POSTGRES_USER")
	if err != nil {
		return err
	}
	db, _, err := fileEnv(getenv, "POSTGRES_DB")
	if err != nil {
		return err
	}
	port := getenv("POSTGRES_PORT")
	if host == "" && pass == "" && user == "" && db == "" && port == "" {
		return nil
	}
	if host == "" {
		host = "postgres"
	}
	if user == "" {
		user = "postgres"
	}
	if db == "" {
		db = user // the postgres image's default for POSTGRES_DB
	}
	if port == "" {
		port = "5432"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return badVar("POSTGRES_PORT", "invalid port %q (want 1-65535)", port)
	}
	if strings.ContainsAny(host, "/@ \t") {
		return badVar("POSTGRES_HOST", "invalid host %q", host)
	}
	u := &rawURL{scheme: "postgres", user: user, pass: pass, hasUser: true, hasPass: pass != "", host: host, port: port, path: "/" + url.PathEscape(db)}
	dsn, target, err := postgresDSN(u)
	if err != nil {
		return badVar("POSTGRES_DB", "%v", err)
	}
	c.add(dependency{kind: kindPostgres, source: "POSTGRES_*", url: dsn, target: target})
	return nil
}

// discoverURL adds an app variable's URL when its scheme is one of kinds; schemes that are not
// network services are skipped with a note, and other known ones too (the app may use them
// in ways entry cannot probe).
func (c *config) discoverURL(src, v string, kinds ...kind) error {
	u, err := splitURL(strings.TrimSpace(v))
	if err != nil {
		return badVar(src, "%v", err)
	}
	k, known := schemeKind(u.scheme)
	want := false
	for _, w := range kinds {
		want = want || known && k == w
	}
	if !want {
		if skippable(u.scheme) {
			c.notes = append(c.notes, fmt.Sprintf("%s: %s:// is not a network service, not waited for", src, u.scheme))
		} else {
			c.notes = append(c.notes, fmt.Sprintf("%s: scheme %s:// is not probed; add a tcp://host:port to ENTRY_WAIT to wait for it", src, u.scheme))
		}
		return nil
	}
	if u.host == "" {
		c.notes = append(c.notes, fmt.Sprintf("%s: no host (a local socket), not waited for", src))
		return nil
	}
	d, err := parseDependency(src, v)
	if err != nil {
		return badVar(src, "%v", err)
	}
	c.add(d)
	return nil
}

// add keeps one probe per endpoint: REDIS_URL and CELERY_BROKER_URL are often the same.
func (c *config) add(d dependency) {
	for _, have := range c.deps {
		if have.kind == d.kind && have.url == d.url {
			return
		}
	}
	c.deps = append(c.deps, d)
}

// redactItem shows a rejected ENTRY_WAIT item without whatever may be a password.
func redactItem(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		if strings.Contains(s, "@") {
			return "(redacted)"
		}
		return s
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		user, _, _ := strings.Cut(rest[:i], ":")
		if end := strings.IndexAny(user, "/?#"); end >= 0 {
			return scheme + "://(redacted)"
		}
		rest = user + ":xxxxx@" + rest[i+1:]
	}
	return scheme + "://" + rest
}
