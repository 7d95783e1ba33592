package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Image reference grammar of github.com/distribution/reference, which
// BuildKit uses to validate FROM and COPY --from image names.
var (
	refNameComponent = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	refDomain        = `(?:(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?)`
	refRemote        = refNameComponent + `(?:/` + refNameComponent + `)*`
	refTag           = `[\w][\w.-]{0,127}`
	refDigest        = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	identifierRe     = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// The two large expressions are compiled on first use, not when the
// package is initialised: every RUN step re-executes the sxmake binary as
// its container's init, which initialises every package, and compiling
// them there cost about 1 ms a step.
var (
	referenceRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^((?:` + refDomain + `/)?` + refRemote + `)(?::(` + refTag + `))?(?:@(` + refDigest + `))?$`)
	})
	nameRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:(` + refDomain + `)/)?(` + refRemote + `)$`)
	})
)

// checkImageRef validates an image name as reference.ParseNormalizedNamed
// does.
func checkImageRef(s string) error {
	if simpleRef(s) {
		return nil
	}
	return checkImageRefFull(s)
}

// checkImageRefFull is checkImageRef without the fast path.
func checkImageRefFull(s string) error {
	if identifierRe.MatchString(s) {
		return fmt.Errorf("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDockerDomain(s)
	remote := remainder
	if i := strings.IndexByte(remainder, ':'); i >= 0 {
		remote = remainder[:i]
	}
	if strings.ToLower(remote) != remote {
		return fmt.Errorf("invalid reference format: repository name (%s) must be lowercase", remote)
	}
	full := domain + "/" + remainder
	m := referenceRe().FindStringSubmatch(full)
	if m == nil {
		if referenceRe().MatchString(strings.ToLower(full)) {
			return errors.New("repository name must be lowercase")
		}
		return errors.New("invalid reference format")
	}
	path := m[1]
	if nm := nameRe().FindStringSubmatch(m[1]); nm != nil {
		path = nm[2]
	}
	if len(path) > 255 {
		return errors.New("repository name must not be more than 255 characters")
	}
	if m[3] != "" {
		return checkDigest(m[3])
	}
	return nil
}

// checkDigest validates an algorithm:hex digest (go-digest's Validate).
func checkDigest(d string) error {
	alg, hex, _ := strings.Cut(d, ":")
	size := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	if size == 0 {
		return errors.New("unsupported digest algorithm")
	}
	if len(hex) != size {
		return errors.New("invalid checksum digest length")
	}
	if strings.Trim(hex, "0123456789abcdef") != "" {
		return errors.New("invalid checksum digest format")
	}
	return nil
}

// splitDockerDomain splits a name into its registry domain and path the
// way the reference package normalises Docker Hub names.
func splitDockerDomain(name string) (string, string) {
	const hub = "docker.io"
	first, rest, ok := strings.Cut(name, "/")
	if !ok {
		return hub, "library/" + name
	}
	var domain, remote string
	switch {
	case first == "localhost":
		domain, remote = first, rest
	case first == "index.docker.io":
		domain, remote = hub, rest
	case strings.ContainsAny(first, ".:"):
		domain, remote = first, rest
	case strings.ToLower(first) != first:
		domain, remote = first, rest
	default:
		domain, remote = hub, name
	}
	if domain == hub && !strings.ContainsRune(remote, '/') {
		remote = "library/" + remote
	}
	return domain, remote
}

// simpleRef reports whether s is a plainly valid Docker Hub name such as
// "stagex/core-busybox" or "alpine:3.20": lower-case path components,
// no registry, no digest. Other names take the full check.
func simpleRef(s string) bool {
	name, tag, hasTag := strings.Cut(s, ":")
	if hasTag && !simpleTag(tag) || len(name) > 200 || strings.Count(name, "/") > 1 {
		return false
	}
	for _, comp := range strings.Split(name, "/") {
		if !simpleComponent(comp) {
			return false
		}
	}
	return len(s) < 64 || !identifierRe.MatchString(s)
}

// simpleComponent matches [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*.
func simpleComponent(c string) bool {
	lowerAlnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	i := 0
	for {
		j := i
		for j < len(c) && lowerAlnum(c[j]) {
			j++
		}
		if j == i {
			return false
		}
		if j == len(c) {
			return true
		}
		k := j
		for k < len(c) && !lowerAlnum(c[k]) {
			k++
		}
		if sep := c[j:k]; sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return false
		}
		i = k
	}
}

// simpleTag matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func simpleTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		b := t[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-') {
			return false
		}
	}
	return true
}
