// Package redact keeps secrets out of what entry prints: passwords quoted in
// the text of a driver's or server's error, and URL passwords inside command
// lines that entry logs or shows in its plan.
package redact
