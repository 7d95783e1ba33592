package packages

import (
	"fmt"
	"strings"
	"unicode"
)

// checkFileName reports why name cannot be a source's file name. Fetch
// writes the file as fetch/<stage>/<name>/<file>, as root, and a build
// copies it from there: the name must be one path element of that
// directory, so that no package.toml, template expansion or mirror URL can
// make sxmake write or read anywhere else. It must not be hidden either
// (Fetch keeps its partial downloads as .<file>.part) and must not hold
// control characters (it appears in messages).
func checkFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the file name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a file name", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%q is not one file name: it must not contain / or \\", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%q is a hidden file name, which fetch/ keeps for partial downloads", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%q contains a control character", name)
	}
	return nil
}

// checkSourceFile checks the file name s.File of the source key, as
// expanded from sm; the error points at the file key when package.toml
// sets it, else at the mirror the name was taken from.
func (p *Package) checkSourceFile(key string, sm sourceManifest, s Source) error {
	err := checkFileName(s.File)
	if err == nil {
		return nil
	}
	field := "sources." + key + ".file"
	if sm.File == "" {
		field = "sources." + key + ".mirrors"
		return p.m.errorf(field, "%s[0]: %v (set file)", field, err)
	}
	return p.m.errorf(field, "%s: %v", field, err)
}
