package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEnviron(t *testing.T) {
	pinned := []string{"PATH=" + DefaultPath}
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"empty", nil, pinned},
		{"build args first", []string{"VERSION=1.2", "FOO=a=b"}, append([]string{"VERSION=1.2", "FOO=a=b"}, pinned...)},
		{"step overrides", []string{"PATH=/opt/bin", "SOURCE_DATE_EPOCH=1700000000", "LANG=en_US.UTF-8"},
			[]string{"PATH=/opt/bin", "SOURCE_DATE_EPOCH=1700000000", "LANG=en_US.UTF-8"}},
		// BuildKit passes no SOURCE_DATE_EPOCH, TZ, LANG or LC_ALL to a
		// step that does not declare them (seen with buildkitd v0.26.3).
		{"nothing but PATH added", []string{"SOURCE_DATE_EPOCH=1"}, []string{"SOURCE_DATE_EPOCH=1", "PATH=" + DefaultPath}},
		{"later duplicate wins in place", []string{"A=1", "B=2", "A=3"}, append([]string{"A=3", "B=2"}, pinned...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Environ(tc.env)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetworkString(t *testing.T) {
	for _, n := range []Network{NetworkNone, NetworkHost} {
		got, err := ParseNetwork(n.String())
		if err != nil || got != n {
			t.Errorf("ParseNetwork(%q) = %v, %v", n.String(), got, err)
		}
	}
	if _, err := ParseNetwork("bridge"); err == nil {
		t.Error("ParseNetwork(bridge) succeeded")
	}
}

func TestValidate(t *testing.T) {
	ok := Spec{Lower: []string{"/l"}, Upper: "/u", Args: []string{"/bin/true"}}
	tests := []struct {
		name   string
		change func(*Spec)
		errs   string
	}{
		{"valid", func(*Spec) {}, ""},
		{"no lower", func(s *Spec) { s.Lower = nil }, "no lower"},
		{"no upper", func(s *Spec) { s.Upper = "" }, "no upper"},
		{"no args", func(s *Spec) { s.Args = nil }, "no arguments"},
		{"relative upper", func(s *Spec) { s.Upper = "u" }, "not absolute"},
		{"comma in work", func(s *Spec) { s.Work = "/w,x" }, "overlayfs"},
		{"relative cwd", func(s *Spec) { s.Cwd = "src" }, "working directory"},
		{"bad network", func(s *Spec) { s.Network = 7 }, "network"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Lower = append([]string(nil), ok.Lower...)
			tc.change(&s)
			err := s.validate()
			if (err == nil) != (tc.errs == "") || (err != nil && !strings.Contains(err.Error(), tc.errs)) {
				t.Errorf("validate() = %v, want error containing %q", err, tc.errs)
			}
		})
	}
}

func TestLogBuffer(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"ab", "cd"}, "abcd"},
		{"keeps the tail", 5, []string{"abc", "def", "gh"}, "defgh"},
		{"one big write", 3, []string{"abcdef"}, "def"},
		{"many small writes", 4, []string{"ab", "cd", "ef", "gh", "ij", "k"}, "hijk"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLogBuffer(tc.limit)
			var direct strings.Builder
			w := l.tee(&direct)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := string(l.bytes()); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
			if got := direct.String(); got != strings.Join(tc.writes, "") {
				t.Errorf("streamed %q", got)
			}
		})
	}
}

func TestOverlayData(t *testing.T) {
	got := overlayData([]string{"/a", "/b"}, "/u", "/w")
	if want := "index=off,metacopy=off,redirect_dir=off,volatile,lowerdir=/a:/b,upperdir=/u,workdir=/w"; got != want {
		t.Errorf("overlayData = %q, want %q", got, want)
	}
}

func TestHostsFile(t *testing.T) {
	want := "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if got := hostsFile(DefaultHostname); got != want {
		t.Errorf("hostsFile = %q, want %q", got, want)
	}
}

func TestCheckEntry(t *testing.T) {
	tests := []struct {
		name, entry string
		ok          bool
	}{
		{"enabled with F", "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\n", true},
		{"without F", "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\noffset 0\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkEntry("/nonexistent", []byte(tc.entry))
			if (err == nil) != tc.ok {
				t.Errorf("checkEntry = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestLookupUser(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\nbuilder:x:1000:1000::/home/b:/bin/sh\n")
	write(t, filepath.Join(root, "etc", "group"), "root:x:0:\nbuilder:x:1000:\nwheel:x:10:builder\n")
	empty := t.TempDir()
	tests := []struct {
		name, root, user string
		want             identity
		fails            bool
	}{
		{name: "default", root: root, want: identity{0, 0, []int{0}}},
		{name: "default without passwd", root: empty, want: identity{0, 0, []int{0}}},
		{name: "numeric pair", root: empty, user: "12:34", want: identity{12, 34, []int{34}}},
		{name: "root pair", root: empty, user: "root:root", want: identity{0, 0, []int{0}}},
		{name: "name with groups", root: root, user: "builder", want: identity{1000, 1000, []int{1000, 10}}},
		{name: "uid only", root: root, user: "1000", want: identity{1000, 1000, []int{1000, 10}}},
		{name: "unknown name", root: root, user: "nobody", fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookupUser(tc.root, tc.user)
			if tc.fails != (err != nil) {
				t.Fatalf("lookupUser: %v, want failure %v", err, tc.fails)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(identity{})); !tc.fails && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMountStubs(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1, 0)
	if err := os.Chtimes(filepath.Join(root, "etc"), old, old); err != nil {
		t.Fatal(err)
	}
	stubs := mountStubs(root)
	want := []string{filepath.Join(root, "etc/resolv.conf"), filepath.Join(root, "etc/hosts")}
	if diff := cmp.Diff(want, stubs); diff != "" {
		t.Fatalf("stubs (-want +got):\n%s", diff)
	}
	// As libcontainer would: create both; the step fills hosts.
	write(t, want[0], "")
	write(t, want[1], "written by the step\n")
	etc, _ := os.Stat(filepath.Join(root, "etc"))
	removeStubs(root, stubs)
	if _, err := os.Stat(want[0]); !os.IsNotExist(err) {
		t.Errorf("empty stub resolv.conf not removed: %v", err)
	}
	if _, err := os.Stat(want[1]); err != nil {
		t.Errorf("hosts written by the step removed: %v", err)
	}
	after, _ := os.Stat(filepath.Join(root, "etc"))
	if !after.ModTime().Equal(etc.ModTime()) {
		t.Errorf("etc mtime %v after removal, %v before", after.ModTime(), etc.ModTime())
	}
}

func TestMountStubsRecursive(t *testing.T) {
	root := t.TempDir()
	stubs := mountStubs(root)
	etc := filepath.Join(root, "etc")
	want := []string{filepath.Join(etc, "resolv.conf"), etc, filepath.Join(etc, "hosts"), etc}
	if diff := cmp.Diff(want, stubs); diff != "" {
		t.Fatalf("stubs (-want +got):\n%s", diff)
	}
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, want[0], "")
	write(t, want[2], "")
	removeStubs(root, stubs)
	if _, err := os.Stat(etc); !os.IsNotExist(err) {
		t.Errorf("etc not removed: %v", err)
	}
}

func TestMakeCwd(t *testing.T) {
	root := t.TempDir()
	host := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if err := makeCwd(root, "/link/a/b", uid, gid); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(host); len(entries) != 0 {
		t.Errorf("makeCwd followed a symlink out of the rootfs: %s has %v", host, entries)
	}
	fi, err := os.Stat(filepath.Join(root, host, "a", "b"))
	if err != nil {
		t.Fatalf("working directory not made inside the rootfs: %v", err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzEnviron checks Environ's contract on arbitrary environments: each
// key once, its value the last one the step gave or else the pinned one.
func FuzzEnviron(f *testing.F) {
	f.Add("PATH=/bin\nA=1\nA=2\n=x\nnoequals")
	f.Add("SOURCE_DATE_EPOCH=5\nTZ=Europe/Paris")
	f.Fuzz(func(t *testing.T, s string) {
		env := strings.Split(s, "\n")
		last := map[string]string{}
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			last[k] = kv
		}
		for _, kv := range pinnedEnv {
			k, _, _ := strings.Cut(kv, "=")
			if _, ok := last[k]; !ok {
				last[k] = kv
			}
		}
		seen := map[string]bool{}
		for _, kv := range Environ(env) {
			k, _, _ := strings.Cut(kv, "=")
			if seen[k] {
				t.Fatalf("key %q twice", k)
			}
			seen[k] = true
			if last[k] != kv {
				t.Fatalf("%q, want %q", kv, last[k])
			}
		}
		if len(seen) != len(last) {
			t.Fatalf("%d keys, want %d", len(seen), len(last))
		}
	})
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		path, dir string
		want      bool
	}{
		{"/home/u/.cache/sxmake/containers", "/home/u", true},
		{"/home/u", "/home/u", true},
		{"/home/user/.cache", "/home/u", false},
		{"/var/cache/sxmake", "/usr/local/bin", false},
		{"/anything", "/", true},
		{"/anything", "", false},
	} {
		if got := within(tc.path, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
	}
}
