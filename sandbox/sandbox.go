package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Sandbox runs steps. Its methods are safe for concurrent use; each Run is
// independent of the others.
type Sandbox struct {
	state        string // state directory
	containers   string // libcontainer's state directory (see containerRoot)
	logLimit     int
	cgroupParent string
	emulate      map[string]bool // platforms emulated even where native (WithEmulation)
}

// Option configures a Sandbox.
type Option func(*Sandbox)

// WithLogLimit keeps at most n bytes (the last ones) of each step's output
// in Result.Log. The default is 1 MiB. Output streamed to Spec.Stdout and
// Spec.Stderr is never cut.
func WithLogLimit(n int) Option {
	return func(s *Sandbox) { s.logLimit = n }
}

// WithCgroupParent puts each step's cgroup at PARENT/<step id> in every
// cgroup hierarchy instead of sxmake/<step id>.
func WithCgroupParent(parent string) Option {
	return func(s *Sandbox) { s.cgroupParent = parent }
}

// WithEmulation runs the steps of these platforms through qemu even where
// the host runs their programs natively, registering qemu's binfmt_misc
// entry as for a host that cannot (see [EnsurePlatform]): the entry then
// serves every program of the platform on the host, until removed. It is
// for testing the emulated path on any host; only platforms sxmake can
// emulate (linux/386 on amd64) qualify.
func WithEmulation(platforms ...string) Option {
	return func(s *Sandbox) {
		for _, p := range platforms {
			s.emulate[normalizePlatform(p)] = true
		}
	}
}

// New returns a Sandbox keeping its run-time state (container state, mount
// points, generated /etc/hosts) under stateDir, which it creates (the
// container state goes elsewhere when stateDir lies inside the directory
// of the sxmake binary; see containerRoot). Nothing is left there once
// each Run returns. New also removes what steps of a
// process killed before it could clean up left in stateDir (mounts,
// cgroups, directories); several processes may share stateDir. The first
// New of a process starts the reaper, a process that does the same for
// this one once it is gone, however it went (see reaper.go). Running
// steps needs root. The first New of a process also puts the kernel's
// cgroup lock in the mode where moving a step into its cgroup does not
// wait, until the process exits (see "favordynmods" in the package
// documentation).
func New(stateDir string, opts ...Option) (*Sandbox, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("sandbox state directory: %w", err)
	}
	for _, d := range []string{abs, filepath.Join(abs, "steps")} {
		if err := mkdirPrivate(d); err != nil {
			return nil, fmt.Errorf("creating sandbox state directory: %w", err)
		}
	}
	containers, err := containerRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("creating container state directory: %w", err)
	}
	s := &Sandbox{state: abs, containers: containers, logLimit: 1 << 20, cgroupParent: "sxmake", emulate: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	s.sweep()
	if err := s.watch(); err != nil {
		return nil, err
	}
	favorDynmods()
	return s, nil
}

// Run runs the step spec and returns how it exited. A step that exits
// non-zero is a Result, not an error. Errors are for everything else: an
// invalid spec, an unrunnable platform (wrapping ErrPlatform), a failure
// to set the sandbox up or to start the process (a missing executable, for
// instance), ErrTimeout
// when Limits.Timeout expired, ErrLimit when the step reached its memory
// or task limit (whatever its exit status), or ctx's error when ctx was
// cancelled. With these four the Result still holds the log so far.
//
// When Run returns, the step's processes, mounts and cgroups are gone.
// Spec.Upper holds the step's changes; it is meaningful only when err is
// nil.
func (s *Sandbox) Run(ctx context.Context, spec Spec) (res Result, err error) {
	if err := spec.validate(); err != nil {
		return Result{}, fmt.Errorf("invalid step: %w", err)
	}
	emulator, err := ensurePlatform(spec.Platform, s.emulate[normalizePlatform(spec.Platform)])
	if err != nil {
		return Result{}, err
	}
	if err := checkRlimits(); err != nil {
		return Result{}, err
	}
	if emulator != "" && spec.Emulating != nil {
		spec.Emulating(emulator)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	warmCgroupLock()
	id, err := newID()
	if err != nil {
		return Result{}, err
	}
	dir := filepath.Join(s.state, "steps", id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("creating step directory: %w", err)
	}
	lock, err := lockStep(dir)
	if err != nil {
		return Result{}, errors.Join(err, removeStepDir(dir))
	}
	defer func() {
		err = errors.Join(err, removeStepDir(dir))
		lock.Close()
	}()

	rootfs, cleanup, err := setupRootfs(dir, spec)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()

	who, err := lookupUser(rootfs, spec.User)
	if err != nil {
		return Result{}, fmt.Errorf("resolving user %q: %w", spec.User, err)
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := makeCwd(rootfs, cwd, who.uid, who.gid); err != nil {
		return Result{}, err
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	hosts, resolv, err := writeEtc(dir, hostname, spec.Network)
	if err != nil {
		return Result{}, err
	}
	rs := &runtimeSpec{id: id, cgroup: "/" + s.cgroupParent + "/" + id, rootfs: rootfs, hosts: hosts, resolv: resolv, hostname: hostname, network: spec.Network, limits: spec.Limits}
	config, err := rs.config()
	if err != nil {
		return Result{}, err
	}
	c, err := libcontainer.Create(s.containers, id, config)
	if err != nil {
		return Result{}, fmt.Errorf("creating container: %w", err)
	}
	defer func() {
		if derr := c.Destroy(); derr != nil {
			err = errors.Join(err, fmt.Errorf("destroying container: %w", derr))
		}
	}()

	log := newLogBuffer(s.logLimit)
	p := &libcontainer.Process{
		Args:             spec.Args,
		Env:              Environ(spec.Env),
		UID:              who.uid,
		GID:              who.gid,
		AdditionalGroups: who.groups,
		Cwd:              cwd,
		Rlimits:          processRlimits(),
		Stdout:           log.tee(spec.Stdout),
		Stderr:           log.tee(spec.Stderr),
		Init:             true,
	}
	res, err = run(ctx, c, p, spec.Limits.Timeout)
	if err == nil {
		err = limitsReached(c, spec.Limits)
	}
	res.Log = log.bytes()
	res.Emulator = emulator
	return res, err
}

// run starts p in c and waits for it, killing the container when ctx is
// done or timeout (if not zero) expires.
func run(ctx context.Context, c *libcontainer.Container, p *libcontainer.Process, timeout time.Duration) (Result, error) {
	// The init gets SIGKILL when the thread that started it exits; keep
	// that thread until the step is over.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	start := time.Now()
	if err := c.Run(p); err != nil {
		return Result{}, fmt.Errorf("starting step: %w", err)
	}
	startup := time.Since(start)
	done := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := p.Wait()
		done <- st
	}()
	var stopped error
	var st *os.ProcessState
	select {
	case st = <-done:
	case <-ctx.Done():
		stopped = ctx.Err()
	case <-expired:
		stopped = fmt.Errorf("after %v: %w", timeout, ErrTimeout)
	}
	if st == nil {
		// Killing the init kills every process of its pid namespace.
		if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			stopped = errors.Join(stopped, fmt.Errorf("killing step: %w", err))
		}
		st = <-done
	}
	res := Result{ExitCode: exitCode(st), Duration: time.Since(start), Startup: startup}
	return res, stopped
}

// exitCode is the shell's view of st: the exit status, or 128+signal.
func exitCode(st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// setupRootfs mounts spec's overlay at dir/rootfs and returns its path
// and a function that removes the mount stubs, unmounts it and removes the
// work directory when Run made it.
func setupRootfs(dir string, spec Spec) (string, func() error, error) {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return "", nil, fmt.Errorf("creating rootfs mount point: %w", err)
	}
	work := spec.Work
	ownWork := work == ""
	if ownWork {
		work = filepath.Clean(spec.Upper) + ".work"
		if err := os.Mkdir(work, 0o700); err != nil {
			return "", nil, fmt.Errorf("creating overlay work directory: %w", err)
		}
	}
	removeWork := func() error {
		if ownWork {
			return os.RemoveAll(work)
		}
		return nil
	}
	if err := MountOverlay(rootfs, spec.Lower, spec.Upper, work); err != nil {
		return "", nil, errors.Join(err, removeWork())
	}
	stubs := mountStubs(rootfs)
	cleanup := func() error {
		removeStubs(rootfs, stubs)
		return errors.Join(Unmount(rootfs), removeWork())
	}
	return rootfs, cleanup, nil
}

// removeStepDir removes a step's directory, unless its rootfs is still
// mounted: removing files through the mount would damage the upper
// directory. A kept directory is removed by a later sweep.
func removeStepDir(dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Remove(rootfs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keeping step directory %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// writeEtc writes the files bind-mounted at /etc/hosts and
// /etc/resolv.conf into dir and returns their paths.
func writeEtc(dir, hostname string, n Network) (hosts, resolv string, err error) {
	hosts = filepath.Join(dir, "hosts")
	resolv = filepath.Join(dir, "resolv.conf")
	rc, err := resolvConf(n)
	if err != nil {
		return "", "", fmt.Errorf("reading host resolv.conf: %w", err)
	}
	if err := writeFile(hosts, []byte(hostsFile(hostname))); err != nil {
		return "", "", err
	}
	if err := writeFile(resolv, rc); err != nil {
		return "", "", err
	}
	return hosts, resolv, nil
}

// writeFile writes b to p with mode 0644 whatever the umask.
func writeFile(p string, b []byte) error {
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	return os.Chmod(p, 0o644)
}

func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("making step id: %w", err)
	}
	return "sx-" + hex.EncodeToString(b), nil
}
