package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpen: only regular files open, resolved inside the root; a FIFO or
// device node where a regular file is expected is an error at once (a
// FIFO opened for reading would block forever), and never opened.
func TestOpen(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
	write("etc/real-group", "root:x:0:\n")
	if err := unix.Mkfifo(filepath.Join(etc, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink("/etc/real-group", filepath.Join(etc, "group")))             // absolute: inside root
	must(t, os.Symlink("../../../../../../etc/hostname", filepath.Join(etc, "up"))) // clamped at root
	must(t, os.Symlink("fifo", filepath.Join(etc, "to-fifo")))
	devices := os.Geteuid() == 0
	if devices {
		// /dev/zero's numbers: reading it would never end.
		must(t, unix.Mknod(filepath.Join(etc, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
	}
	tests := []struct {
		name    string
		want    string // content, or "" for an error
		wantErr error
	}{
		{"/etc/passwd", "root:x:0:0::/root:/bin/sh\n", nil},
		{"/etc/group", "root:x:0:\n", nil},
		{"etc/../etc/passwd", "root:x:0:0::/root:/bin/sh\n", nil},
		{"/etc/fifo", "", ErrNotRegular},
		{"/etc/to-fifo", "", ErrNotRegular},
		{"/etc", "", ErrNotRegular},
		{"/etc/up", "", fs.ErrNotExist},
		{"/etc/missing", "", fs.ErrNotExist},
	}
	if devices {
		tests = append(tests, struct {
			name    string
			want    string
			wantErr error
		}{"/etc/zero", "", ErrNotRegular})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				data string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				f, err := Open(root, tc.name)
				if err != nil {
					done <- result{err: err}
					return
				}
				defer f.Close()
				b, err := io.ReadAll(f)
				done <- result{string(b), err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second): // a bound on a hang, not a speed
				t.Fatal("Open blocked")
			}
			if tc.wantErr != nil {
				if !errors.Is(r.err, tc.wantErr) {
					t.Fatalf("error %v, want %v", r.err, tc.wantErr)
				}
				return
			}
			if r.err != nil || r.data != tc.want {
				t.Fatalf("read %q, %v; want %q", r.data, r.err, tc.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
