// Package cachetest starts real remote cache servers for tests, on free
// ports of 127.0.0.1, stopped when the test ends: nginx with WebDAV PUT
// (a Bazel HTTP cache) and Debian's docker-registry. Without the server
// installed a test is skipped, or fails when SXMAKE_TEST_ROOT=1 (CI).
package cachetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// need skips the test when the server binary is missing.
func need(t testing.TB, bin, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("SXMAKE_TEST_ROOT") == "1" {
			t.Fatalf("%s is not installed (apt-get install %s)", bin, pkg)
		}
		t.Skipf("%s is not installed", bin)
	}
}

// Nginx runs nginx as a Bazel HTTP cache on a free port of 127.0.0.1 and
// returns its URL (http://127.0.0.1:PORT/cache) and storage directory.
func Nginx(t testing.TB) (url, store string) {
	t.Helper()
	need(t, "nginx", "nginx-core")
	url, store, stop, err := StartNginx(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url, store
}

// Registry runs Debian's docker-registry (the CNCF distribution registry)
// without authentication on a free port of 127.0.0.1 and returns its
// host:port and storage directory.
func Registry(t testing.TB) (host, store string) {
	t.Helper()
	need(t, "docker-registry", "docker-registry")
	host, store, stop, err := StartRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return host, store
}

// StartNginx starts nginx as a Bazel HTTP cache with its files in dir,
// and returns its URL, storage directory and a function stopping it.
func StartNginx(dir string) (url, store string, stop func(), err error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", "", nil, err
	}
	store = filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return "", "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	// Workers run as root: the storage dir is under the test's 0700
	// temp dir.
	text := fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	client_max_body_size 0;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
		location /cache/ {
			dav_methods PUT;
			create_full_put_path on;
		}
	}
}
`, dir, port, store)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return "", "", nil, err
	}
	stop, err = start(exec.Command(bin, "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log")), port, filepath.Join(dir, "error.log"))
	return fmt.Sprintf("http://127.0.0.1:%d/cache", port), store, stop, err
}

// StartRegistry starts docker-registry with its files in dir, and returns
// its host:port, storage directory and a function stopping it.
func StartRegistry(dir string) (host, store string, stop func(), err error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", "", nil, err
	}
	store = filepath.Join(dir, "store")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", "", nil, err
	}
	conf := filepath.Join(dir, "config.yml")
	text := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
`, store, port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return "", "", nil, err
	}
	logFile := filepath.Join(dir, "registry.log")
	f, err := os.Create(logFile)
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = f, f
	halt, err := start(cmd, port, logFile)
	if err != nil {
		f.Close()
		return "", "", nil, err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), store, func() { halt(); f.Close() }, nil
}

// start starts cmd, waits until it accepts connections on port and
// returns a function stopping it.
func start(cmd *exec.Cmd, port int, logFile string) (func(), error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	for range 400 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	log, _ := os.ReadFile(logFile)
	return nil, fmt.Errorf("%s did not start on port %d:\n%s", cmd.Path, port, log)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
