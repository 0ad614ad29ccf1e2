// Package redact keeps secrets out of what entry prints. It masks by
// structure: the place a secret occupies in a command line (URL user
// information, the value of a secret-named assignment or flag, a word equal to
// a known secret) is replaced by a fixed mask. It never searches a free text,
// such as a driver's error message, for the password: replacing each
// occurrence there masks user and database names that happen to equal it
// ("user=xxxxx"), or parts of addresses ("xxxxx.0.0.1"), which tells a reader
// the password and hides the diagnosis. Texts from servers and drivers are
// instead made safe to print with Clean, and the code that builds them never
// puts a password in.
package redact
