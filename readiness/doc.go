// Package readiness waits for the services a Django container depends on,
// at the protocol level: PostgreSQL answers SELECT 1 as the configured user
// on the configured database, RabbitMQ completes the AMQP handshake and
// opens a channel on the vhost, Redis answers PING after AUTH, an HTTP
// endpoint (Elasticsearch health included) answers 2xx, a TCP port accepts.
//
// Every checker sorts its failures into "not ready yet" (retried with
// capped, jittered exponential backoff) and "refused for good"
// (*PermanentError, with a hint), so that a wrong password or a missing
// database stops the wait at once instead of at the deadline.
//
// Constructors validate their URL and return a concrete type; String never
// shows a password, and no error built here carries one. The package reads
// no environment, flags or globals (pgx itself still honours libpq's PG*
// variables, as psycopg does in the application).
package readiness
