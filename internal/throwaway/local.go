package throwaway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The machine's own servers, shared by every test run: PostgreSQL with trust
// auth for postgres, RabbitMQ with guest/guest.
const (
	localPostgres = "postgres://postgres@127.0.0.1:5432/"
	localAMQP     = "amqp://guest:guest@127.0.0.1:5672/"
)

// FreeAddr returns a loopback address ("127.0.0.1:port") that nothing
// listened on a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// Name returns prefix, "_" and 12 random hex digits: a name no other test
// run uses, valid unquoted as a database, role or queue name.
func Name(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// LocalPostgresURL is the URL of database db on the local PostgreSQL, as
// the superuser postgres, which needs no password there.
func LocalPostgresURL(db string) string { return localPostgres + db }

// LocalDatabase creates a fresh database on the local PostgreSQL and drops
// it (WITH (FORCE), so sessions left open do not stop it) when the test
// ends. It returns the database's name.
func LocalDatabase(t testing.TB, prefix string) string {
	t.Helper()
	name := Name(prefix)
	if err := localExec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("throwaway: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := localExec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("throwaway: drop database %s: %v", name, err)
		}
	})
	return name
}

// localExec runs one statement on the local server's postgres database.
func localExec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, LocalPostgresURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// LocalQueue returns a queue name no other test uses, for a program under
// test to declare on the local RabbitMQ. When the test ends the queue and
// the direct exchange of the same name, which Celery declares with it, are
// deleted.
func LocalQueue(t testing.TB, prefix string) string {
	t.Helper()
	name := Name(prefix)
	t.Cleanup(func() {
		conn, err := amqp.Dial(localAMQP)
		if err != nil {
			t.Errorf("throwaway: delete queue %s: %v", name, err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("throwaway: delete queue %s: %v", name, err)
			return
		}
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Errorf("throwaway: delete queue %s: %v", name, err)
			return
		}
		if err := ch.ExchangeDelete(name, false, false); err != nil {
			t.Errorf("throwaway: delete exchange %s: %v", name, err)
		}
	})
	return name
}
