package sandbox_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestNetworkNone: a step cannot reach a server listening on the host's
// 127.0.0.1 and sees only lo; NetworkHost, the explicit opt-in, can.
func TestNetworkNone(t *testing.T) {
	s := newSandbox(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	root := sandboxtest.ProbeRootfs(t, "amd64")
	tests := []struct {
		name    string
		network sandbox.Network
		args    []string
		exit    int
		out     string
	}{
		{"none cannot dial the host", sandbox.NetworkNone, []string{"/probe", "dial", l.Addr().String()}, 1, ""},
		{"none has only lo", sandbox.NetworkNone, []string{"/probe", "ifaces"}, 0, "lo\n"},
		{"host can dial the host", sandbox.NetworkHost, []string{"/probe", "dial", l.Addr().String()}, 0, "connected\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := step(t, root, tc.args...)
			spec.Network = tc.network
			res, out := mustRun(t, s, spec)
			if res.ExitCode != tc.exit {
				t.Errorf("exit %d, want %d; log:\n%s", res.ExitCode, tc.exit, res.Log)
			}
			if tc.out != "" && out != tc.out {
				t.Errorf("stdout %q, want %q", out, tc.out)
			}
		})
	}
}

// TestHostFilesInvisible: the step sees its rootfs and the mounts the
// sandbox gives it, nothing of the host's file system.
func TestHostFilesInvisible(t *testing.T) {
	s := newSandbox(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := sandboxtest.ProbeRootfs(t, "amd64")
	_, out := mustRun(t, s, step(t, root, "/probe", "ls", "/"))
	if diff := cmp.Diff("dev\netc\nprobe\nproc\nsys\n", out); diff != "" {
		t.Errorf("ls / (-want +got):\n%s", diff)
	}
	for _, p := range []string{wd, "/root", "/etc/passwd", "/bin/busybox", filepath.Join(wd, "sandbox.go")} {
		t.Run(p, func(t *testing.T) {
			res, _ := mustRun(t, s, step(t, root, "/probe", "cat", p))
			if res.ExitCode == 0 {
				t.Errorf("the step read the host's %s", p)
			}
		})
	}
}

// TestHostSettingsInvisible: the host's environment, TZ, umask and
// hostname change nothing a step observes.
func TestHostSettingsInvisible(t *testing.T) {
	s := newSandbox(t)
	root := sandboxtest.BusyboxRootfs(t)
	observe := func() string {
		spec := step(t, root, "/bin/sh", "-c", "env | sort; umask; hostname; date -d @0; cat /etc/hosts /etc/resolv.conf")
		spec.Env = []string{"FOO=bar"}
		_, out := mustRun(t, s, spec)
		return out
	}
	want := strings.Join([]string{
		"FOO=bar",
		"HOME=/root",
		"PATH=" + sandbox.DefaultPath,
		"PWD=/",
		"SHLVL=1",
		"0022",
		"buildkitsandbox",
		"Thu Jan  1 00:00:00 UTC 1970",
		"127.0.0.1\tlocalhost buildkitsandbox",
		"::1\tlocalhost ip6-localhost ip6-loopback",
		"",
	}, "\n")
	if diff := cmp.Diff(want, observe()); diff != "" {
		t.Errorf("with the test's host settings (-want +got):\n%s", diff)
	}
	t.Setenv("TZ", "Asia/Tokyo")
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("PATH", "/opt/host/bin:"+os.Getenv("PATH"))
	t.Setenv("SXMAKE_HOST_SECRET", "leak")
	t.Setenv("HOME", "/home/someone")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if diff := cmp.Diff(want, observe()); diff != "" {
		t.Errorf("with other host settings (-want +got):\n%s", diff)
	}
	if h, _ := os.Hostname(); h == sandbox.DefaultHostname {
		t.Logf("the host is named %s too; the hostname check proves nothing", h)
	}
}

// TestSymlinkEscape: symlinks in the rootfs that point at host paths never
// let a step, or the sandbox working for it, read or write the host.
func TestSymlinkEscape(t *testing.T) {
	s := newSandbox(t)
	host := t.TempDir()
	sandboxtest.WriteFile(t, filepath.Join(host, "secret"), "HOSTFILE secret\n")
	sandboxtest.WriteFile(t, filepath.Join(host, "passwd"), "evil:x:4242:4242:HOSTFILE:/:/bin/sh\n")
	sandboxtest.WriteFile(t, filepath.Join(host, "hosts"), "HOSTFILE hosts\n")
	before := listTree(t, host)

	tests := []struct {
		name  string
		links map[string]string // rootfs path -> target
		user  string
		cwd   string
		args  []string
		fail  bool // Run itself must fail
	}{
		{name: "read through absolute link", links: map[string]string{"escape": host}, args: []string{"/probe", "cat", "/escape/secret"}},
		{name: "read through relative link", links: map[string]string{"escape": "../../../../../../../../" + host}, args: []string{"/probe", "cat", "/escape/secret"}},
		{name: "write through link", links: map[string]string{"escape": host}, args: []string{"/probe", "write", "/escape/new", "x"}},
		{name: "cwd through link", links: map[string]string{"escape": host}, cwd: "/escape/made", args: []string{"/probe", "exit", "0"}},
		{name: "etc is a link", links: map[string]string{"etc": host}, args: []string{"/probe", "cat", "/etc/secret"}},
		{name: "hosts is a link", links: map[string]string{"etc/hosts": filepath.Join(host, "hosts")}, args: []string{"/probe", "cat", "/etc/hosts"}},
		{name: "passwd through etc link", links: map[string]string{"etc": host}, user: "evil", args: []string{"/probe", "exit", "0"}, fail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := sandboxtest.ProbeRootfs(t, "amd64")
			for p, target := range tc.links {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
			spec := step(t, root, tc.args...)
			spec.User, spec.Cwd = tc.user, tc.cwd
			res, err := s.Run(context.Background(), spec)
			if tc.fail != (err != nil) {
				t.Fatalf("Run error %v, want failure %v; log:\n%s", err, tc.fail, res.Log)
			}
			if strings.Contains(string(res.Log), "HOSTFILE") {
				t.Errorf("the step read a host file:\n%s", res.Log)
			}
			if diff := cmp.Diff(before, listTree(t, host)); diff != "" {
				t.Errorf("the host directory changed (-before +after):\n%s", diff)
			}
		})
	}
}

// listTree returns "name content" for each file under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b, _ := os.ReadFile(p)
		out = append(out, strings.TrimPrefix(p, dir)+" "+string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpperIsTheDiff: after a step the upper directory holds the step's
// changes and nothing of the sandbox's mounts (/etc/hosts, resolv.conf).
func TestUpperIsTheDiff(t *testing.T) {
	s := newSandbox(t)
	withData := sandboxtest.BusyboxRootfs(t)
	if err := os.MkdirAll(filepath.Join(withData, "data", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WriteFile(t, filepath.Join(withData, "data", "sub", "f"), "f\n")
	tests := []struct {
		name string
		root string
		args []string
		want []string
	}{
		{
			name: "renamed directory is copied in full",
			root: withData,
			args: []string{"/bin/mv", "/data", "/moved"},
			want: []string{"data c0:0", "etc/", "moved/", "moved/sub/", "moved/sub/f"},
		},
		{
			name: "rootfs with etc",
			root: sandboxtest.BusyboxRootfs(t),
			args: []string{"/bin/sh", "-c", "echo hi > /out; rm /bin/true; cat /etc/hosts > /dev/null"},
			// etc/ is copied up to hold the mount stubs and left empty,
			// its mtime that of the stubs' creation, as with BuildKit.
			want: []string{"bin/", "bin/true c0:0", "etc/", "out"},
		},
		{
			name: "bare rootfs",
			root: sandboxtest.ProbeRootfs(t, "amd64"),
			args: []string{"/probe", "write", "/out", "hi"},
			// The mount points of /dev, /proc and /sys stay, as with BuildKit.
			want: []string{"dev/", "out", "proc/", "sys/"},
		},
		{
			name: "step that changes nothing",
			root: sandboxtest.BusyboxRootfs(t),
			args: []string{"/bin/true"},
			want: []string{"etc/"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := step(t, tc.root, tc.args...)
			res, _ := mustRun(t, s, spec)
			if res.ExitCode != 0 {
				t.Fatalf("exit %d; log:\n%s", res.ExitCode, res.Log)
			}
			if diff := cmp.Diff(tc.want, listUpper(t, spec.Upper)); diff != "" {
				t.Errorf("upper (-want +got):\n%s", diff)
			}
		})
	}
}

// listUpper lists dir: directories with a slash, whiteouts as "c0:0".
func listUpper(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		name := strings.TrimPrefix(p, dir+"/")
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			name += "/"
		case fi.Mode()&os.ModeCharDevice != 0:
			st := fi.Sys().(*syscall.Stat_t)
			if st.Rdev != 0 {
				return errors.New("unexpected device " + name)
			}
			name += " c0:0"
		}
		out = append(out, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
