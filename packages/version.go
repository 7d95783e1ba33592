package packages

import (
	"fmt"
	"strings"

	"github.com/stagex/sxmake/rules"
)

// versionVars returns the version templates for version v: {version},
// {version_under}, {version_dash}, {version_major}, {version_major_minor}
// and {version_strip_suffix}.
func versionVars(v string) map[string]string {
	major, _, _ := strings.Cut(v, ".")
	majorMinor := v
	if parts := strings.SplitN(v, ".", 3); len(parts) == 3 {
		majorMinor = parts[0] + "." + parts[1]
	}
	stripped, _, _ := strings.Cut(v, "-")
	return map[string]string{
		"version":              v,
		"version_under":        strings.ReplaceAll(v, ".", "_"),
		"version_dash":         strings.ReplaceAll(v, ".", "-"),
		"version_major":        major,
		"version_major_minor":  majorMinor,
		"version_strip_suffix": stripped,
	}
}

// expand replaces each {name} in tmpl by vars[name]. A name missing from
// vars, or a brace without its partner, is an error.
func expand(tmpl string, vars map[string]string) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexAny(tmpl, "{}")
		if open < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		if tmpl[open] == '}' {
			return "", fmt.Errorf("unmatched } in %q", tmpl)
		}
		end := strings.IndexAny(tmpl[open+1:], "{}")
		if end < 0 || tmpl[open+1+end] != '}' {
			return "", fmt.Errorf("unterminated { in %q", tmpl)
		}
		name := tmpl[open+1 : open+1+end]
		val, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("unknown template {%s}", name)
		}
		b.WriteString(tmpl[:open])
		b.WriteString(val)
		tmpl = tmpl[open+end+2:]
	}
}

// StageXChecks is the BUILDKIT_DOCKERFILE_CHECK value StageX builds every
// image with (src/targets.py): every Dockerfile check but one, and any
// finding fails the build.
const StageXChecks = "skip=FromPlatformFlagConstDisallowed;error=true"

// BuildArgs returns the build arguments derived from package.toml: VERSION,
// VERSION_UNDER, VERSION_DASH, VERSION_MAJOR, VERSION_MAJOR_MINOR,
// VERSION_STRIP_SUFFIX, SOURCE_DATE_EPOCH=1, and for each source with its own
// version <KEY>_VERSION and <KEY>_SOURCE (the file name), and for each source
// with a git_sha <KEY>_GIT_SHA, KEY being the source key upper-cased; and
// BUILDKIT_DOCKERFILE_CHECK=StageXChecks, which StageX passes to every
// build (it is a build arg to BuildKit too, but one that changes no image
// byte unless a Containerfile declares it). Platform arguments
// (TARGETARCH, ...) are not included. The map is a fresh copy.
func (p *Package) BuildArgs() map[string]string {
	args := make(map[string]string, len(p.buildArgs))
	for k, v := range p.buildArgs {
		args[k] = v
	}
	return args
}

func (p *Package) computeBuildArgs() map[string]string {
	args := map[string]string{"SOURCE_DATE_EPOCH": "1", rules.CheckArg: StageXChecks}
	for k, v := range versionVars(p.Version) {
		args[strings.ToUpper(k)] = v
	}
	for _, s := range p.Sources {
		key := strings.ToUpper(s.Key)
		if s.Version != "" {
			args[key+"_VERSION"] = s.Version
			args[key+"_SOURCE"] = s.File
		}
		if s.GitSHA != "" {
			args[key+"_GIT_SHA"] = s.GitSHA
		}
	}
	return args
}
