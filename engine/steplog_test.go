package engine

import (
	"bytes"
	"testing"
)

// A step's log keeps the first limit bytes and then says it was cut; every
// byte still reaches the events (the progress output).
func TestStepLogLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64
		want  string
	}{
		{"under", 100, "0123456789abcdefghij"},
		{"cut", 12, "0123456789ab\n[sxmake: the log is cut here, at 12 bytes (--step-log); the step's further output is not kept]\n"},
		{"at a write's end", 10, "0123456789\n[sxmake: the log is cut here, at 10 bytes (--step-log); the step's further output is not kept]\n"},
		{"no limit", 0, "0123456789abcdefghij"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log, emitted bytes.Buffer
			w := &stepOutput{log: &log, limit: tc.limit, emit: func(p []byte) { emitted.Write(p) }}
			for _, p := range []string{"0123456789", "abcdefghij"} {
				if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", p, n, err)
				}
			}
			if log.String() != tc.want {
				t.Errorf("log %q, want %q", log.String(), tc.want)
			}
			if emitted.String() != "0123456789abcdefghij" {
				t.Errorf("events got %q, want every byte", emitted.String())
			}
		})
	}
}
