package rules

import (
	"strings"
	"testing"
)

// TestExpansionBounded: a Containerfile is hostile input, and a few lines
// of variable references can ask for more bytes than the machine has
// (each line doubling a value, or copying a large one many times).
// Evaluation fails with a clear error instead, after a bounded amount of
// work.
func TestExpansionBounded(t *testing.T) {
	doubling := func(instr string) string {
		var b strings.Builder
		b.WriteString(instr + " A=xxxxxxxxxxxxxxxx\n")
		for range 40 {
			b.WriteString(instr + " A=$A$A\n")
		}
		return b.String()
	}
	// A value of 16 MiB (2^20 * 16 bytes), then copied line after line.
	var copies strings.Builder
	copies.WriteString("FROM scratch\nENV A=xxxxxxxxxxxxxxxx\n")
	for range 20 {
		copies.WriteString("ENV A=$A$A\n")
	}
	for i := range 1000 {
		copies.WriteString("ENV B" + strings.Repeat("x", i%7) + "=$A\n")
	}
	tests := map[string]string{
		"env doubling":        "FROM scratch\n" + doubling("ENV"),
		"global arg doubling": doubling("ARG") + "FROM scratch\n",
		"stage arg doubling":  "FROM scratch\n" + doubling("ARG"),
		"copies":              copies.String(),
		"replace all":         "FROM scratch\nENV A=xxxxxxxxxxxxxxxx\n" + strings.Repeat("ENV A=${A//x/$A}\n", 8),
		"one line":            "FROM scratch\nENV A=xxxxxxxxxxxxxxxx\n" + strings.Repeat("ENV A=$A$A$A$A$A$A$A$A\n", 3) + "ENV B=" + strings.Repeat("$A", 30000) + "\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			f, err := Parse("Containerfile", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Evaluate(f, EvalOptions{})
			if err == nil || !strings.Contains(err.Error(), "variable expansions exceed") {
				t.Fatalf("Evaluate: %v, want an error saying expansions exceed the bound", err)
			}
		})
	}
}
