package rules

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

func TestExpand(t *testing.T) {
	env := mapEnv{"V": "value", "E": "", "P": "/usr/local/lib/libfoo.so.1", "S": "a b"}
	tests := []struct {
		name, in, want string
	}{
		{"plain", "abc", "abc"},
		{"dollar", "$V", "value"},
		{"braces", "${V}x", "valuex"},
		{"unset", "[$NOPE]", "[]"},
		{"lone dollar", "a$", "a$"},
		{"dollar space", "$ x", "$ x"},
		{"default unset", "${NOPE:-dflt}", "dflt"},
		{"default empty colon", "${E:-dflt}", "dflt"},
		{"default empty no colon", "${E-dflt}", ""},
		{"default set", "${V:-dflt}", "value"},
		{"alt set", "${V:+alt}", "alt"},
		{"alt empty colon", "${E:+alt}", ""},
		{"alt empty no colon", "${E+alt}", "alt"},
		{"alt unset", "${NOPE+alt}", ""},
		{"nested default", "${NOPE:-${V}}", "value"},
		{"prefix", "${P#*/}", "usr/local/lib/libfoo.so.1"},
		{"prefix greedy", "${P##*/}", "libfoo.so.1"},
		{"suffix", "${P%.*}", "/usr/local/lib/libfoo.so"},
		{"suffix greedy", "${P%%.*}", "/usr/local/lib/libfoo"},
		{"replace", "${P/lib/LIB}", "/usr/local/LIB/libfoo.so.1"},
		{"replace all", "${P//lib/LIB}", "/usr/local/LIB/LIBfoo.so.1"},
		{"single quotes", `'$V'`, "$V"},
		{"double quotes", `"$V x"`, "value x"},
		{"escaped dollar", `\$V`, "$V"},
		{"escape in double quotes", `"a\"b\$c\d"`, `a"b$c\d`},
		{"escape char", `a\ b`, "a b"},
		{"trailing escape", `a\`, "a"},
		{"special param", "$1x", "x"},
		{"non-ascii", "héllo ${V}", "héllo value"},
		{"heredoc marker", "a <<EOF", "a <<EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lexer{escape: '\\'}.word(tc.in, env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("word(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	env := mapEnv{"E": ""}
	tests := []struct{ in, want string }{
		{"${NOPE:?must be set}", `failed to process "${NOPE:?must be set}": NOPE: must be set`},
		{"${NOPE?}", `failed to process "${NOPE?}": NOPE: is not allowed to be unset`},
		{"${E:?}", `failed to process "${E:?}": E: is not allowed to be empty`},
		{"${V", `failed to process "${V": unsupported modifier (` + "\uFFFD" + `) in substitution`},
		{"${V:-x", `failed to process "${V:-x": syntax error: missing '}'`},
		{"${}", `failed to process "${}": syntax error: bad substitution`},
		{"${V:#x}", `failed to process "${V:#x}": unsupported modifier (:#) in substitution`},
		{"'abc", `failed to process "'abc": unexpected end of statement while looking for matching single-quote`},
		{`"abc`, `failed to process "\"abc": unexpected end of statement while looking for matching double-quote`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := lexer{escape: '\\'}.word(tc.in, env)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWords(t *testing.T) {
	env := mapEnv{"S": "a b"}
	tests := []struct {
		in   string
		want []string
	}{
		{"one two", []string{"one", "two"}},
		{`"a b" c`, []string{"a b", "c"}},
		{"$S c", []string{"a", "b", "c"}},
		{`"$S" c`, []string{"a b", "c"}},
		{"''", nil},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := lexer{escape: '\\'}.words(tc.in, env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
