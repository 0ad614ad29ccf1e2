package plan

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Kind is the protocol a dependency is probed with.
type Kind string

const (
	Postgres Kind = "postgres"
	AMQP     Kind = "amqp"
	Redis    Kind = "redis"
	HTTP     Kind = "http"
	TCP      Kind = "tcp"
)

// dependency is one URL as parsed, before its checker exists. url holds credentials and is
// handed only to the checker; shown is the redacted form used in parse errors.
type dependency struct {
	kind   Kind
	source string // the variable it came from
	url    string
	shown  string
}

// maxShownItem is the longest ENTRY_WAIT item quoted in an error; a longer one is named by its
// scheme and size only.
const maxShownItem = 200

// maxHost is the longest DNS name (RFC 1035); a longer host is a mistake, not a server.
const maxHost = 253

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
	if strings.ContainsFunc(s, unicode.IsControl) {
		// It would reach the log lines that name the dependency.
		return nil, fmt.Errorf("a control character in the URL")
	}
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
	if len(host) > 3*maxHost {
		return nil, fmt.Errorf("host of %d bytes, longer than a host name can be (not shown)", len(host))
	}
	h, err := url.PathUnescape(host)
	if err != nil {
		return nil, fmt.Errorf("invalid percent-encoding in host %q", host)
	}
	if len(h) > maxHost {
		return nil, fmt.Errorf("host of %d bytes, longer than a host name can be (%d; not shown)", len(h), maxHost)
	}
	u.host = h
	if port != "" {
		if err := checkPort(port, false); err != nil {
			return nil, err
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
func schemeKind(scheme string) (Kind, bool) {
	switch scheme {
	case "postgres", "postgresql", "pgsql", "psql", "postgis", "timescale", "timescalegis", "cockroach":
		return Postgres, true
	case "amqp", "amqps", "pyamqp", "librabbitmq":
		return AMQP, true
	case "redis", "rediss":
		return Redis, true
	case "http", "https":
		return HTTP, true
	case "tcp":
		return TCP, true
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
	case Postgres:
		d.url, d.shown, err = postgresDSN(u)
	case AMQP:
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
		d.shown = scheme + "://" + u.who() + u.hostPort(port) + vhost
	case Redis:
		db := strings.Trim(u.path, "/")
		if db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return dependency{}, fmt.Errorf("invalid database number %q (want /0, /1, ...)", db)
			}
			db = "/" + db
		}
		q := keepParams(u.query, "ssl_cert_reqs")
		d.url = u.scheme + "://" + u.userinfo() + u.hostPort("6379") + db + q
		d.shown = u.scheme + "://" + u.who() + u.hostPort("6379") + db
	case HTTP:
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
		d.shown = shown.String()
	case TCP:
		if u.port == "" {
			return dependency{}, fmt.Errorf("tcp:// needs a port")
		}
		d.url = u.hostPort("")
		d.shown = "tcp://" + d.url
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
func postgresDSN(u *rawURL) (dsn, shown string, err error) {
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
	shown = "postgres://" + u.who() + hp + "/" + db
	return strings.Join(kv, " "), shown, nil
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

// discover collects the dependencies from ENTRY_WAIT(_FILE) and, unless ENTRY_DISCOVER=false,
// from the app's own settings variables, in the precedence Django and cookiecutter-django use.
func (b *builder) discover() {
	wait, src := b.fileEnv("ENTRY_WAIT", maxListValue)
	for _, item := range splitList(wait) {
		if len(item) > maxValue {
			b.errs.add(src, "a URL %s", tooLong(len(item), maxValue))
			continue
		}
		d, err := parseDependency(src, item)
		if err != nil {
			b.errs.add(src, "%q: %v", redactItem(item), err)
			continue
		}
		b.add(d)
	}
	if !b.spec.Discover {
		return
	}
	b.discoverDatabase()
	for _, name := range []string{"CELERY_BROKER_URL", "REDIS_URL"} {
		if v, src := b.fileEnv(name, maxValue); v != "" {
			b.discoverURL(src, v, AMQP, Redis)
		}
	}
}

func (b *builder) discoverDatabase() {
	if v, src := b.fileEnv("DATABASE_URL", maxValue); v != "" {
		b.discoverURL(src, v, Postgres)
		return
	}
	// cookiecutter-django's settings build the URL from POSTGRES_* when DATABASE_URL is unset.
	host, _ := b.value("POSTGRES_HOST", maxHost)
	pass, _ := b.fileEnv("POSTGRES_PASSWORD", maxValue)
	user, _ := b.fileEnv("POSTGRES_USER", maxValue)
	db, _ := b.fileEnv("POSTGRES_DB", maxValue)
	port, _ := b.value("POSTGRES_PORT", maxValue)
	if host == "" && pass == "" && user == "" && db == "" && port == "" {
		return
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
	bad := false
	if err := checkPort(port, false); err != nil {
		b.errs.add("POSTGRES_PORT", "%v", err)
		bad = true
	}
	if strings.ContainsAny(host, "/@ \t") || strings.ContainsFunc(host, unicode.IsControl) {
		b.errs.add("POSTGRES_HOST", "invalid host %q", host)
		bad = true
	}
	for _, v := range [][2]string{{"POSTGRES_USER", user}, {"POSTGRES_DB", db}} {
		if strings.ContainsFunc(v[1], unicode.IsControl) {
			b.errs.add(v[0], "a control character in the value")
			bad = true
		}
	}
	if bad {
		return
	}
	u := &rawURL{scheme: "postgres", user: user, pass: pass, hasUser: true, hasPass: pass != "", host: host, port: port, path: "/" + url.PathEscape(db)}
	dsn, shown, err := postgresDSN(u)
	if err != nil {
		b.errs.add("POSTGRES_DB", "%v", err)
		return
	}
	b.add(dependency{kind: Postgres, source: "POSTGRES_*", url: dsn, shown: shown})
}

// discoverURL adds an app variable's URL when its scheme is one of kinds; schemes that are not
// network services are skipped with a note, and other known ones too (the app may use them
// in ways entry cannot probe).
func (b *builder) discoverURL(src, v string, kinds ...Kind) {
	u, err := splitURL(strings.TrimSpace(v))
	if err != nil {
		b.errs.add(src, "%v", err)
		return
	}
	k, known := schemeKind(u.scheme)
	want := false
	for _, w := range kinds {
		want = want || known && k == w
	}
	if !want {
		if skippable(u.scheme) {
			b.note("%s: %s:// is not a network service, not waited for", src, u.scheme)
		} else {
			b.note("%s: scheme %s:// is not probed; add a tcp://host:port to ENTRY_WAIT to wait for it", src, u.scheme)
		}
		return
	}
	if u.host == "" {
		b.note("%s: no host (a local socket), not waited for", src)
		return
	}
	d, err := parseDependency(src, v)
	if err != nil {
		b.errs.add(src, "%v", err)
		return
	}
	b.add(d)
}

// add keeps one probe per endpoint: REDIS_URL and CELERY_BROKER_URL are often the same.
func (b *builder) add(d dependency) {
	for _, have := range b.deps {
		if have.kind == d.kind && have.url == d.url {
			return
		}
	}
	b.deps = append(b.deps, d)
}

// redactItem shows a rejected ENTRY_WAIT item without whatever may be a password.
func redactItem(s string) string {
	if len(s) > maxShownItem {
		scheme, _, ok := strings.Cut(s, "://")
		if !ok || len(scheme) > 20 {
			return fmt.Sprintf("(an item of %d bytes)", len(s))
		}
		return fmt.Sprintf("%s://... (%d bytes)", scheme, len(s))
	}
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

// checkPort is the one port check: a decimal number 1-65535, or 0 too when zero is true
// (a listen address, where 0 picks a free port).
func checkPort(port string, zero bool) error {
	low := 1
	if zero {
		low = 0
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < low || n > 65535 || strings.HasPrefix(port, "+") {
		return fmt.Errorf("invalid port %q (want %d-65535)", port, low)
	}
	return nil
}

// splitList splits on commas and whitespace, dropping empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}
