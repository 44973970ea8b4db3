package logs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLevel(t *testing.T) {
	cases := []struct {
		name, line, want string
	}{
		{"json level", `{"time":"2024-01-01T00:00:00Z","level":"error","msg":"boom"}`, LevelError},
		{"json upper", `{"level":"WARNING","msg":"x"}`, LevelWarn},
		{"json spaces", `{ "lvl" : "Info" , "msg":"x"}`, LevelInfo},
		{"json severity", `{"severity":"CRITICAL","message":"disk"}`, LevelFatal},
		{"json debug", `{"msg":"x","level":"trace"}`, LevelDebug},
		{"json err", `{"level":"err"}`, LevelError},
		{"json panic", `{"level":"panic"}`, LevelFatal},
		{"json unknown value", `{"level":"loud","msg":"x"}`, LevelUnknown},
		{"json level in message only", `{"msg":"level of water"}`, LevelUnknown},
		{"json key in value then real key", `{"msg":"\"level\" is a word","level":"warn"}`, LevelWarn},
		{"logfmt", `ts=2024-01-01T00:00:00Z level=warn msg="slow"`, LevelWarn},
		{"logfmt first", `level=debug msg=x`, LevelDebug},
		{"logfmt quoted", `ts=1 level="ERROR" msg=x`, LevelError},
		{"logfmt lvl", `t=1 lvl=eror msg=x`, LevelError},
		{"logfmt not a key", `msg=x sublevel=error`, LevelUnknown},
		{"bracketed", `2024-01-01 00:00:00 [ERROR] database gone`, LevelError},
		{"bracketed lower", `[warn] cache miss`, LevelWarn},
		{"spaced upper", `2024-01-01 12:00:00 INFO server started`, LevelInfo},
		{"start of line colon", `ERROR: relation "x" does not exist`, LevelError},
		{"postgres fatal", `2024-01-01 00:00:00.000 UTC [42] FATAL:  password authentication failed`, LevelFatal},
		{"lower case word is text", `the error was handled`, LevelUnknown},
		{"glog error", `E1126 10:00:00.123456    1 main.go:42] failed`, LevelError},
		{"glog info", `I0101 00:00:00.000000    1 main.go:1] ok`, LevelInfo},
		{"glog-like word", `E12345 not glog`, LevelUnknown},
		{"warning word", `WARNING deprecated flag`, LevelWarn},
		{"empty", ``, LevelUnknown},
		{"plain", `GET /index.html 200`, LevelUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ParseLevel([]byte(tc.line)))
		})
	}
}

func BenchmarkParseLevel(b *testing.B) {
	line := []byte(`{"time":"2024-01-01T00:00:00.000Z","level":"info","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"duration_ms":12}`)
	b.ReportAllocs()
	for b.Loop() {
		ParseLevel(line)
	}
}
