package sandbox

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Network is a step's network policy.
type Network int

const (
	// NetworkNone gives the step a network namespace of its own with only
	// the loopback interface. It is the default.
	NetworkNone Network = iota
	// NetworkHost gives the step the host's network namespace. It must be
	// asked for explicitly (a package or step opting in to downloads).
	NetworkHost
)

// String returns "none" or "host", the spelling used in action keys.
func (n Network) String() string {
	switch n {
	case NetworkNone:
		return "none"
	case NetworkHost:
		return "host"
	}
	return fmt.Sprintf("network(%d)", int(n))
}

// ParseNetwork is the inverse of [Network.String].
func ParseNetwork(s string) (Network, error) {
	switch s {
	case "none", "":
		return NetworkNone, nil
	case "host":
		return NetworkHost, nil
	}
	return 0, fmt.Errorf("unknown network policy %q (want none or host)", s)
}

// Limits bound a step's resources. Zero values mean no limit.
type Limits struct {
	// Memory is the cgroup memory limit in bytes.
	Memory int64
	// Pids is the cgroup limit on the number of tasks.
	Pids int64
	// Timeout bounds the step's wall time. When it expires the step's
	// whole process tree is killed and Run returns ErrTimeout.
	Timeout time.Duration
}

// Spec describes one step. Lower, Upper and Args are required.
type Spec struct {
	// Lower are read-only layer directories, top first. At least one.
	Lower []string
	// Upper is an empty directory receiving the step's changes.
	Upper string
	// Work is overlayfs's work directory: empty, on Upper's file system,
	// good for one Run (the volatile overlay leaves a mark in it that
	// stops a second mount). When empty, Run uses a directory next to
	// Upper named Upper+".work" and removes it afterwards.
	Work string

	// Args is the process's argv, exec form. A shell-form RUN is
	// the image's SHELL followed by the command line as one argument:
	// []string{"/bin/sh", "-c", "make install"}.
	Args []string
	// Env is the process's environment as KEY=value, in the order the
	// image config and build args give it; see [Environ] for what is added.
	Env []string
	// Cwd is the working directory; "" means "/". Created (owned by the
	// step's user) when missing, as BuildKit does.
	Cwd string
	// User is "", "uid", "uid:gid", "name" or "name:group", resolved in the
	// rootfs's /etc/passwd and /etc/group. "" means root.
	User string
	// Hostname defaults to "buildkitsandbox".
	Hostname string

	// Platform is "" (the host's), "linux/amd64", "linux/386" or
	// "linux/arm64"; see [EnsurePlatform] for how each runs.
	Platform string
	// Network is the network policy, NetworkNone by default.
	Network Network
	// Limits bound the step's resources.
	Limits Limits

	// Stdout and Stderr receive the step's output as it is written. Either
	// may be nil. Run also keeps the combined output in Result.Log.
	Stdout, Stderr io.Writer
	// Emulating, when not nil, is called before the step starts if its
	// programs are to run through an emulator, with the binfmt_misc entry
	// (see Result.Emulator): emulated steps can take long, and what they
	// write can differ from a native run's.
	Emulating func(emulator string)
}

// Result is what a step that ran to completion (or was timed out) left.
type Result struct {
	// ExitCode is the process's exit status; 128+signal when it was
	// killed by a signal.
	ExitCode int
	// Log is the combined stdout and stderr in arrival order; only its
	// last bytes (see [WithLogLimit]) when the output was larger.
	Log []byte
	// Duration is the wall time from the container's start to the
	// step's exit.
	Duration time.Duration
	// Startup is the part of Duration spent starting the container:
	// libcontainer re-executing sxmake as the init, which sets the
	// namespaces, mounts, cgroups and seccomp up and execs Args[0].
	Startup time.Duration
	// Emulator is the binfmt_misc entry (such as "qemu-i386") through
	// which the step's programs ran, "" when they ran natively. Emulation
	// can change what a step writes: under qemu-i386, uname -m says i686
	// where a native 32-bit process sees x86_64.
	Emulator string
}

// ErrTimeout is returned (wrapped) when Limits.Timeout expired.
var ErrTimeout = errors.New("step timed out")

// DefaultHostname is the hostname of a step unless Spec.Hostname is set,
// the one BuildKit gives every RUN.
const DefaultHostname = "buildkitsandbox"

// DefaultPath is the PATH a step gets when its environment has none,
// BuildKit's default for Linux.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// pinnedEnv is added for every variable the step does not set itself. It
// is PATH alone, as in BuildKit: the SOURCE_DATE_EPOCH, TZ, LANG and LC_ALL
// StageX exports reach buildctl, not the steps (a step sees them only where
// the Containerfile declares them), and tools that read them (py_compile
// with SOURCE_DATE_EPOCH, sort and messages with LC_ALL) would otherwise
// write other bytes than BuildKit's build. The host's environment never
// reaches a step either way.
var pinnedEnv = []string{
	"PATH=" + DefaultPath,
}

// Environ returns the environment a step with env runs with: env itself,
// then PATH=DefaultPath when env does not set PATH. A later duplicate key
// in env wins over an earlier one, as in BuildKit. The result depends on
// env alone, never on the host.
func Environ(env []string) []string {
	out := make([]string, 0, len(env)+len(pinnedEnv))
	index := map[string]int{}
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range env {
		add(kv)
	}
	for _, kv := range pinnedEnv {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := index[k]; !ok {
			add(kv)
		}
	}
	return out
}

// validate reports the first problem with s.
func (s *Spec) validate() error {
	switch {
	case len(s.Lower) == 0:
		return errors.New("spec has no lower directories")
	case s.Upper == "":
		return errors.New("spec has no upper directory")
	case len(s.Args) == 0:
		return errors.New("spec has no arguments")
	}
	for _, d := range append(append([]string{}, s.Lower...), s.Upper, s.Work) {
		if d != "" && !path.IsAbs(d) {
			return fmt.Errorf("directory %q is not absolute", d)
		}
		if strings.ContainsAny(d, ":,") {
			return fmt.Errorf("directory %q contains ':' or ',' which overlayfs cannot take", d)
		}
	}
	if s.Cwd != "" && !path.IsAbs(s.Cwd) {
		return fmt.Errorf("working directory %q is not absolute", s.Cwd)
	}
	if s.Network != NetworkNone && s.Network != NetworkHost {
		return fmt.Errorf("unknown network policy %v", s.Network)
	}
	return nil
}
