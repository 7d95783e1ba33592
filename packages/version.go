package packages

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stagex/sxmake/rules"
)

// versionVars returns the version templates for version v, as StageX's
// src/common.py derives them: {version}, {version_under}, {version_dash},
// {version_major}, {version_major_minor} and {version_strip_suffix}. A
// version without a dot has no major.minor: common.py returns Python's
// None, which the generator and fetch.py print as "None".
func versionVars(v string) map[string]string {
	major, _, _ := strings.Cut(v, ".")
	majorMinor := "None"
	if parts := strings.SplitN(v, ".", 3); len(parts) >= 2 {
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

// unknownTemplate is the error of expand for a {name} it has no value for.
type unknownTemplate struct{ name string }

func (e *unknownTemplate) Error() string { return fmt.Sprintf("unknown template {%s}", e.name) }

// expand replaces each {name} in tmpl by vars[name], and "{{" and "}}" by
// "{" and "}", as Python's str.format (which StageX uses) does. A name
// missing from vars (an *unknownTemplate), or a brace without its partner,
// is an error.
func expand(tmpl string, vars map[string]string) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexAny(tmpl, "{}")
		if open < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:open])
		if open+1 < len(tmpl) && tmpl[open+1] == tmpl[open] {
			b.WriteByte(tmpl[open])
			tmpl = tmpl[open+2:]
			continue
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
			return "", &unknownTemplate{name}
		}
		b.WriteString(val)
		tmpl = tmpl[open+end+2:]
	}
}

// StageXChecks is the BUILDKIT_DOCKERFILE_CHECK value StageX builds every
// image with (src/targets.py): every Dockerfile check but one, and any
// finding fails the build.
const StageXChecks = "skip=FromPlatformFlagConstDisallowed;error=true"

// BuildArgs returns the build arguments StageX's generator derives from
// package.toml: SOURCE_DATE_EPOCH=1 and
// BUILDKIT_DOCKERFILE_CHECK=StageXChecks, which StageX passes to every
// build (a build arg to BuildKit too, but one that changes no image byte
// unless a Containerfile declares it); when the package has a version,
// VERSION, VERSION_UNDER, VERSION_DASH, VERSION_MAJOR, VERSION_MAJOR_MINOR
// and VERSION_STRIP_SUFFIX; for each source with its own version
// <KEY>_VERSION and <KEY>_SOURCE (see sourceArg); for each source with a
// git_sha <KEY>_GIT_SHA; KEY being the source key upper-cased. Platform
// arguments (TARGETARCH, ...) are not included. The map is a fresh copy.
func (p *Package) BuildArgs() map[string]string {
	args := make(map[string]string, len(p.buildArgs))
	for k, v := range p.buildArgs {
		args[k] = v
	}
	return args
}

// SourceDateEpoch is StageX's SOURCE_DATE_EPOCH, in seconds: the build
// arg every package gets, the time every image records as its creation and
// the latest time a file of its layers may have (rewrite-timestamp).
const SourceDateEpoch = 1

func (p *Package) computeBuildArgs() (map[string]string, error) {
	args := map[string]string{"SOURCE_DATE_EPOCH": strconv.Itoa(SourceDateEpoch), rules.CheckArg: StageXChecks}
	if p.Version != "" {
		for k, v := range versionVars(p.Version) {
			args[strings.ToUpper(k)] = v
		}
	}
	var errs []error
	for _, key := range sortedKeys(p.m.Sources) {
		sm := p.m.Sources[key]
		upper := strings.ToUpper(key)
		if sm.Version != "" {
			file, err := p.sourceArg(key, sm)
			if err != nil {
				errs = append(errs, err)
			}
			args[upper+"_VERSION"] = sm.Version
			args[upper+"_SOURCE"] = file
		}
		if sm.GitSHA != "" {
			args[upper+"_GIT_SHA"] = sm.GitSHA
		}
	}
	return args, errors.Join(errs...)
}

// sourceArg returns <KEY>_SOURCE of a source with its own version as
// StageX's generator computes it, which is not always the name fetch
// gives the file: the source's file template, or else the last path
// segment of its first mirror as written, expanded with {version} the
// source's version but {version_dash} and {version_under} the package's
// (empty without one), and {format}. The generator knows no other
// template there.
func (p *Package) sourceArg(key string, sm sourceManifest) (string, error) {
	k := "sources." + key
	tmpl, field := sm.File, k+".file"
	if tmpl == "" {
		tmpl, field = urlPathBase(sm.Mirrors[0]), k+".mirrors"
	}
	vars := map[string]string{"version": sm.Version, "version_dash": "", "version_under": "", "format": sm.Format}
	if p.Version != "" {
		pv := versionVars(p.Version)
		vars["version_dash"], vars["version_under"] = pv["version_dash"], pv["version_under"]
	}
	file, err := expand(tmpl, vars)
	var ut *unknownTemplate
	if errors.As(err, &ut) {
		return "", p.m.errorf(field, "%s: {%s} cannot name a source with its own version: StageX's generator expands only {version}, {version_dash}, {version_under} and {format} in %s_SOURCE", field, ut.name, strings.ToUpper(key))
	}
	if err != nil {
		return "", p.m.errorf(field, "%s: %v", field, err)
	}
	return file, nil
}

// urlPathBase returns what follows the last "/" of a URL's path, as
// Python's urlsplit(u).path.split("/")[-1]: templates are left alone.
func urlPathBase(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			u = ""
		}
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u[strings.LastIndexByte(u, '/')+1:]
}
