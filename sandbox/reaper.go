package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// If sxmake is killed outright (SIGKILL, a cancelled CI job), nothing of
// its own runs again: its steps' processes die with it (each init's
// parent-death signal, see Init), but their rootfs mounts, cgroups and
// state would stay until some later New on the same state directory. So
// the first New of a process starts a reaper: the same binary, re-executed
// in a session of its own (a signal to sxmake's process group does not
// reach it), holding the read end of a pipe whose write end only sxmake
// has. sxmake writes each state directory it uses down the pipe. When
// sxmake is gone, however it went, the pipe reads end of file, and the
// reaper sweeps those state directories (see sweep: steps whose lock is
// free are killed, destroyed and unmounted) and exits.

const (
	reaperArg = "sxmake-sandbox-reaper"
	reaperEnv = "_SXMAKE_SANDBOX_REAPER"
)

var reaper struct {
	once sync.Once
	err  error
	mu   sync.Mutex
	w    *os.File        // the pipe's write end
	sent map[string]bool // state directories already written
}

// watch has the reaper sweep s's state directory once this process is
// gone.
func (s *Sandbox) watch() error {
	reaper.once.Do(func() { reaper.w, reaper.err = startReaper() })
	if reaper.err != nil {
		return fmt.Errorf("starting the sandbox reaper: %w", reaper.err)
	}
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	rec := s.state + "\x00" + s.containers + "\x00"
	if reaper.sent[rec] {
		return nil
	}
	if _, err := io.WriteString(reaper.w, rec); err != nil {
		return fmt.Errorf("sandbox reaper: %w", err)
	}
	reaper.sent[rec] = true
	return nil
}

// startReaper starts the reaper and returns the pipe's write end. The
// write end is close-on-exec, so no step or other child inherits it.
func startReaper() (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{os.Args[0], reaperArg}
	cmd.Env = []string{reaperEnv + "=1"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	reaper.sent = map[string]bool{}
	// Nobody waits for it: it outlives this process by design. Release
	// keeps the os.Process from holding anything.
	cmd.Process.Release()
	return w, nil
}

// isReaper reports whether this process was started as the reaper.
func isReaper() bool {
	return len(os.Args) > 1 && os.Args[1] == reaperArg && os.Getenv(reaperEnv) == "1"
}

// reap is the reaper's main: it reads state directories from fd 3 until
// end of file, then sweeps each.
func reap() {
	data, _ := io.ReadAll(bufio.NewReader(os.NewFile(3, "sxmake")))
	fields := bytes.Split(data, []byte{0})
	for i := 0; i+1 < len(fields); i += 2 {
		s := &Sandbox{state: string(fields[i]), containers: string(fields[i+1])}
		s.sweep()
	}
	os.Exit(0)
}
