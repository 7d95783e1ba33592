package packages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadTOML feeds package.toml text through decoding, validation and
// template expansion. None of it may panic, and every error must name the
// file first.
func FuzzLoadTOML(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/tree/packages/*/*/package.toml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	archives, _ := filepath.Glob("testdata/errors/*.txtar")
	for _, a := range archives {
		data, err := os.ReadFile(a)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range parseArchive(data) {
			if strings.HasSuffix(file.name, "package.toml") {
				f.Add([]byte(file.data))
			}
		}
	}
	const name = "packages/core/foo/package.toml"
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &Package{Stage: "core", Name: "foo", rel: "packages/core/foo"}
		err := p.decode(name, data)
		if err == nil {
			p.Version = p.ownVersion
			err = p.expandSources()
			if err == nil {
				p.buildArgs, err = p.computeBuildArgs()
			}
		}
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, name+":") {
				t.Fatalf("error line does not start with the file name: %q", line)
			}
		}
	})
}
