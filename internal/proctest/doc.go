// Package proctest helps tests that run real processes: Buffer collects what
// they print and lets a test wait for the text it expects, and the /proc
// helpers find them (children, descendants, the terminal's foreground one).
package proctest
