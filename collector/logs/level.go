package logs

import "bytes"

// Levels a line can be classified as, from least to most severe, then
// LevelUnknown when the line names none.
const (
	LevelDebug   = "debug"
	LevelInfo    = "info"
	LevelWarn    = "warn"
	LevelError   = "error"
	LevelFatal   = "fatal"
	LevelUnknown = "unknown"
)

// levels lists every value ParseLevel returns, for pre-created series.
var levels = []string{LevelDebug, LevelInfo, LevelWarn, LevelError, LevelFatal, LevelUnknown}

// ParseLevel finds the severity of one log line (without its newline) and
// returns one of debug, info, warn, error, fatal or unknown.
//
// It recognises, in this order:
//   - JSON objects with a "level", "lvl" or "severity" string value;
//   - logfmt pairs level=, lvl= or severity= (quoted or not);
//   - text forms: a bracketed level ("[ERROR]", "[warn]") anywhere, a level
//     word standing alone between spaces or at the start of the line
//     ("ERROR ", " WARN ", "INFO:"), and glog's prefix ("E1126 10:00:00.1").
//
// Values are matched case-insensitively: trace/debug/dbg are debug;
// info/information/notice are info; warn/warning are warn; err/error are
// error; fatal/panic/crit/critical/alert/emerg/emergency are fatal.
// The parser does not decode JSON or allocate: it looks for the key as a
// quoted string followed by a colon, which is what every JSON logger writes.
func ParseLevel(line []byte) string {
	if len(line) == 0 {
		return LevelUnknown
	}
	start := bytes.IndexFunc(line, func(r rune) bool { return r != ' ' && r != '\t' })
	if start >= 0 && line[start] == '{' {
		if lvl, ok := jsonLevel(line[start:]); ok {
			return lvl
		}
	}
	if lvl, ok := logfmtLevel(line); ok {
		return lvl
	}
	return textLevel(line)
}

var levelKeys = [][]byte{[]byte("level"), []byte("lvl"), []byte("severity")}

// jsonLevel looks for "level": "value" (or lvl, severity) in a JSON object.
func jsonLevel(line []byte) (string, bool) {
	for _, key := range levelKeys {
		rest := line
		for {
			i := indexFold(rest, key)
			if i < 0 {
				break
			}
			before, after := rest[:i], rest[i+len(key):]
			rest = after
			if len(before) == 0 || before[len(before)-1] != '"' || len(after) == 0 || after[0] != '"' {
				continue
			}
			v := skipSpace(after[1:])
			if len(v) == 0 || v[0] != ':' {
				continue
			}
			v = skipSpace(v[1:])
			if len(v) == 0 || v[0] != '"' {
				continue
			}
			v = v[1:]
			end := bytes.IndexByte(v, '"')
			if end < 0 {
				continue
			}
			if lvl := normalize(v[:end]); lvl != LevelUnknown {
				return lvl, true
			}
		}
	}
	return "", false
}

// logfmtLevel looks for level=value (or lvl=, severity=) at the start of
// the line or after a space.
func logfmtLevel(line []byte) (string, bool) {
	for _, key := range levelKeys {
		rest := line
		for {
			i := indexFold(rest, key)
			if i < 0 {
				break
			}
			before, after := rest[:i], rest[i+len(key):]
			rest = after
			if len(before) > 0 && before[len(before)-1] != ' ' && before[len(before)-1] != '\t' {
				continue
			}
			if len(after) == 0 || after[0] != '=' {
				continue
			}
			v := after[1:]
			if len(v) > 0 && v[0] == '"' {
				v = v[1:]
				if end := bytes.IndexByte(v, '"'); end >= 0 {
					v = v[:end]
				}
			} else if end := bytes.IndexAny(v, " \t"); end >= 0 {
				v = v[:end]
			}
			if lvl := normalize(v); lvl != LevelUnknown {
				return lvl, true
			}
		}
	}
	return "", false
}

// textLevel finds [LEVEL], a standalone LEVEL word, or glog's prefix.
func textLevel(line []byte) string {
	if lvl, ok := glogLevel(line); ok {
		return lvl
	}
	// Look at words: a word is a run of letters; it counts when it is
	// bracketed, or delimited by spaces, line ends or a trailing colon.
	n := len(line)
	// Only scan the head of long lines: the level sits near the start.
	if n > 256 {
		n = 256
	}
	for i := 0; i < n; {
		if !isLetter(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isLetter(line[j]) {
			j++
		}
		word := line[i:j]
		var prev, next byte = ' ', ' '
		if i > 0 {
			prev = line[i-1]
		}
		if j < len(line) {
			next = line[j]
		}
		bracketed := (prev == '[' && next == ']') || (prev == '<' && next == '>')
		spaced := (prev == ' ' || prev == '\t') && (next == ' ' || next == '\t' || next == ':' || j == len(line))
		if (bracketed || spaced) && len(word) >= 3 {
			// Standalone words must be upper case ("ERROR", not "error in
			// the text"); bracketed ones may be any case.
			if bracketed || isUpper(word) {
				if lvl := normalize(word); lvl != LevelUnknown {
					return lvl
				}
			}
		}
		i = j
	}
	return LevelUnknown
}

// glogLevel recognises glog/klog's "Lmmdd hh:mm:ss.uuuuuu" prefix.
func glogLevel(line []byte) (string, bool) {
	if len(line) < 6 {
		return "", false
	}
	for _, c := range line[1:5] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	if line[5] != ' ' {
		return "", false
	}
	switch line[0] {
	case 'I':
		return LevelInfo, true
	case 'W':
		return LevelWarn, true
	case 'E':
		return LevelError, true
	case 'F':
		return LevelFatal, true
	}
	return "", false
}

// normalize maps a level value to one of the levels, case-insensitively.
func normalize(v []byte) string {
	if len(v) > 16 {
		return LevelUnknown
	}
	var buf [16]byte
	for i, c := range v {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(v)]) {
	case "trace", "debug", "dbg", "debu":
		return LevelDebug
	case "info", "inf", "information", "informational", "notice":
		return LevelInfo
	case "warn", "warning", "wrn":
		return LevelWarn
	case "err", "error", "eror":
		return LevelError
	case "fatal", "panic", "crit", "critical", "alert", "emerg", "emergency":
		return LevelFatal
	}
	return LevelUnknown
}

// indexFold is bytes.Index with ASCII case folding of the haystack; sep
// must be lower case.
func indexFold(s, sep []byte) int {
	n := len(sep)
	for i := 0; i+n <= len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != sep[0] {
			continue
		}
		ok := true
		for k := 1; k < n; k++ {
			d := s[i+k]
			if 'A' <= d && d <= 'Z' {
				d += 'a' - 'A'
			}
			if d != sep[k] {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isUpper(w []byte) bool {
	for _, c := range w {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// parseLevelAs is ParseLevel for a log of a known format: "json" reads only
// the JSON level keys (a JSON line whose message says "ERROR" is not an
// error), "text" only logfmt and the text forms; "" tries all.
func parseLevelAs(line []byte, format string) string {
	switch format {
	case "json":
		start := bytes.IndexFunc(line, func(r rune) bool { return r != ' ' && r != '\t' })
		if start >= 0 && line[start] == '{' {
			if lvl, ok := jsonLevel(line[start:]); ok {
				return lvl
			}
		}
		return LevelUnknown
	case "text":
		if lvl, ok := logfmtLevel(line); ok {
			return lvl
		}
		return textLevel(line)
	}
	return ParseLevel(line)
}
