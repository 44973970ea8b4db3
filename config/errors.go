package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, with the file, line and key
// path it concerns.
type Error struct {
	File string
	Line int
	// Path is the key path, with the element's name quoted after it when the
	// element has one: `alerts.rules[2] "high_cpu"`.
	Path string
	Msg  string
	// Err is the underlying error, when there is one (an unreadable file).
	Err error
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Error formats the problem as `file:line: path: message`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in one configuration file.
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns every problem, so errors.Is and errors.As see them all.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortByLine orders the errors as they appear in the file; errors without a
// line keep their place at the end.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		li, lj := es[i].Line, es[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// reporter turns raw key paths ("alerts.rules[2].duration") into errors that
// carry the file, the line and the name of the nearest named element.
type reporter struct {
	file      string
	positions map[string]int
	// names maps a list element's path ("alerts.rules[2]") to its name.
	names map[string]string
	errs  Errors
}

// line returns the line of path, or of its nearest ancestor that has one.
func (r *reporter) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := r.positions[p]; ok {
			return l
		}
	}
	return 0
}

// valueErr reports a problem with the value at path. Inside a named element it
// reads `alerts.rules[2] "high_cpu": duration "5x" is not a duration`,
// elsewhere `logging.maxSize: "100XB" is not a size`.
func (r *reporter) valueErr(line int, path, format string, args ...any) {
	r.add(line, path, " ", fmt.Sprintf(format, args...))
}

// keyErr reports a problem with the key at path itself, such as an unknown key:
// `collectors.app.tragets: unknown key "tragets"`.
func (r *reporter) keyErr(line int, path, format string, args ...any) {
	r.add(line, path, ": ", fmt.Sprintf(format, args...))
}

func (r *reporter) add(line int, path, sep, msg string) {
	r.errs = append(r.errs, r.makeError(line, path, sep, msg))
}

func (r *reporter) makeError(line int, path, sep, msg string) *Error {
	if line == 0 {
		line = r.line(path)
	}
	display, rel := path, ""
	for p := path; p != ""; p = parentPath(p) {
		name, ok := r.names[p]
		if !ok {
			continue
		}
		display = fmt.Sprintf("%s %q", p, name)
		rel = strings.TrimPrefix(path[len(p):], ".")
		break
	}
	if rel != "" {
		msg = rel + sep + msg
	}
	return &Error{File: r.file, Line: line, Path: display, Msg: msg}
}

// parentPath strips the last segment of a key path: "a.b[2].c" -> "a.b[2]" ->
// "a.b" -> "a" -> "".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

// joinPath appends a key to a key path.
func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// indexPath appends a list index to a key path.
func indexPath(base string, i int) string { return fmt.Sprintf("%s[%d]", base, i) }
