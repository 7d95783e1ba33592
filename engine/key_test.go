package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInputsKey(t *testing.T) {
	build := func(pairs ...string) *inputs {
		in := newInputs()
		for i := 0; i < len(pairs); i += 2 {
			in.add(pairs[i], pairs[i+1])
		}
		return in
	}
	a := build("kind", "RUN", "arg", "make")
	if a.key() != build("kind", "RUN", "arg", "make").key() {
		t.Error("same inputs gave different keys")
	}
	for name, other := range map[string]*inputs{
		"value changed":        build("kind", "RUN", "arg", "make -j2"),
		"label changed":        build("kind", "RUN", "env", "make"),
		"bytes shifted":        build("kind", "RUN arg", "", "make"),
		"input added":          build("kind", "RUN", "arg", "make", "net", "none"),
		"newline in the value": build("kind", "RUN", "arg", "make\n"),
	} {
		if other.key() == a.key() {
			t.Errorf("%s: key unchanged", name)
		}
	}
}

func TestInputsQuoteMultiline(t *testing.T) {
	in := newInputs()
	in.add("heredoc", "line 1\nline 2\n")
	want := []string{keyVersion, `heredoc "line 1\nline 2\n"`}
	if diff := cmp.Diff(want, in.lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	before := []string{keyVersion, "kind RUN", "parent sha256:aa", "source sha256:11", "source sha256:22", "net none"}
	now := []string{keyVersion, "kind RUN", "parent sha256:bb", "source sha256:11", "source sha256:33", "env A=1"}
	want := []string{
		"parent changed: sha256:aa -> sha256:bb",
		"source changed: sha256:22 -> sha256:33",
		"env added: A=1",
		"net removed: none",
	}
	if diff := cmp.Diff(want, explain(before, now)); diff != "" {
		t.Errorf("explain (-want +got):\n%s", diff)
	}
	if got := explain(now, now); len(got) != 0 {
		t.Errorf("explain of identical inputs = %q, want nothing", got)
	}
}
