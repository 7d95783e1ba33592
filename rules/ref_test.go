package rules

import (
	"testing"
)

func TestCheckImageRef(t *testing.T) {
	tests := []struct{ in, want string }{
		{"stagex/core-busybox", ""},
		{"stagex/core-busybox:1.36.1", ""},
		{"alpine", ""},
		{"a__b", ""},
		{"a--b_c.d", ""},
		{"localhost:5000/x/y:tag", ""},
		{"registry.example.org/a/b/c@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ""},
		{"Stagex/Core", "invalid reference format: repository name (Core) must be lowercase"},
		{"UPPER", "invalid reference format: repository name (library/UPPER) must be lowercase"},
		{"a___b", "invalid reference format"},
		{"a..b", "invalid reference format"},
		{"-a", "invalid reference format"},
		{"a-", "invalid reference format"},
		{"a:", "invalid reference format"},
		{"a:.x", "invalid reference format"},
		{"a/b@sha256:abc", "invalid reference format"},
		{"a@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "invalid repository name (0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef), cannot specify 64-byte hexadecimal strings"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := ""
			if err := checkImageRef(tc.in); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("checkImageRef(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzImageRef checks that the fast path never accepts a name the full
// reference grammar rejects.
func FuzzImageRef(f *testing.F) {
	for _, s := range []string{"stagex/core-busybox:1", "a__b", "a.b-c/d", "x:y", "a--b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if simpleRef(s) {
			if err := checkImageRefFull(s); err != nil {
				t.Fatalf("fast path accepts %q, full check says %v", s, err)
			}
		}
	})
}
