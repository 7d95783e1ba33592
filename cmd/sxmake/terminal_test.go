package main

import "testing"

// TestSafe: nothing a terminal acts on passes, all the rest is kept.
func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text\n\tindented", "plain text\n\tindented"},
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"\x1b]0;pwned\x07\x1b[2J", `\x1b]0;pwned\x07\x1b[2J`},
		{"fake\r[x] done", `fake\x0d[x] done`},
		{"csi\xc2\x9b31m c1", `csi\u009b31m c1`},
		{"raw\x9b31m byte", `raw\x9b31m byte`},
		{"del\x7f bs\b nul\x00", `del\x7f bs\x08 nul\x00`},
		{"abc\u202edcba", `abc\u202edcba`},
		{"cut \xe2\x9c", `cut \xe2\x9c`},
	}
	for _, tc := range tests {
		if got := safe(tc.in); got != tc.want {
			t.Errorf("safe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := safeLine("a\nb\x1b"); got != `a\x0ab\x1b` {
		t.Errorf("safeLine: %q", got)
	}
}
