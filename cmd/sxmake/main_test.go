package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestMain lets testscript run this binary as the "sxmake" command.
func TestMain(m *testing.M) {
	// Builds re-execute this binary as a sandboxed step's init.
	sandbox.Init()
	// Tests that need sxmake as a process of its own (to kill it) run
	// this binary with SXMAKE_TEST_MAIN=1.
	if os.Getenv("SXMAKE_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// The test trees' seeds are file:// mirrors of the host's busybox
	// (busybox-static, and the arm64 one .ci/install-deps extracts),
	// unless the caller (a script, for the commands it runs) says.
	if _, ok := os.LookupEnv("SXMAKE_FILE_MIRRORS"); !ok {
		os.Setenv("SXMAKE_FILE_MIRRORS", seedDirs)
	}
	testscript.Main(m, map[string]func(){
		"sxmake": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// seedDirs are the directories the test trees' file:// mirrors read.
const seedDirs = "/bin:/usr/local/share/sxmake"

// repoTestdata is the repository's top-level testdata directory.
func repoTestdata(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestScripts runs the CLI scripts in testdata/script. $TREES is the
// repository's testdata directory. Regenerate nothing: scripts hold their
// expected output inline.
func TestScripts(t *testing.T) {
	trees := repoTestdata(t)
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("TREES", trees)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config")) // the network allowlist's home
			return nil
		},
	})
}

// update rewrites the expected files of the scripts (cmp targets) from
// what sxmake prints: go test ./cmd/sxmake -run Scripts -update.
var update = flag.Bool("update", false, "rewrite the scripts' expected output")

// TestBuildScripts runs the scripts in testdata/build, which build images
// and so need root.
func TestBuildScripts(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/build",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
			return nil
		},
	})
}

// TestExitStatus checks the exit status contract: 0 success, 1 definition
// error, 2 usage error, and that every definition error names the file,
// line and column of the real problem.
func TestExitStatus(t *testing.T) {
	td := repoTestdata(t)
	demo := filepath.Join(td, "stagex")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	bad := func(name string) string { return filepath.Join(td, "malformed", name) }
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string // a line stderr must contain
	}{
		// (--allow-network: the plan says nothing about steps that run offline)
		{"plan ok", []string{"-C", demo, "--allow-network", "bootstrap-busybox,user-hello", "-n", "user-hello"}, 0, ""},
		{"ls ok", []string{"-C", demo, "ls"}, 0, ""},
		{"no target", []string{"-C", demo, "-n"}, 2, "sxmake: no target given"},
		{"unknown flag", []string{"-C", demo, "--frobnicate", "-n", "user-hello"}, 2, "unknown flag: --frobnicate"},
		{"graph bad format", []string{"-C", demo, "graph", "--format", "svg", "user-hello"}, 2, `unknown --format "svg"`},
		{"ls extra arg", []string{"-C", demo, "ls", "x"}, 2, "expected no arguments"},
		{"bad platform", []string{"-C", demo, "--platform", "plan9", "-n", "user-hello"}, 2, "--platform"},
		{"unknown target", []string{"-C", demo, "-n", "core-lvm"}, 1, "core-llvm"},
		{"ambiguous bare name", []string{"-C", demo, "-n", "busybox"}, 1, "bootstrap-busybox"},
		{"missing tree", []string{"-C", filepath.Join(td, "does-not-exist"), "ls"}, 1, "does-not-exist"},
	}
	for _, tc := range malformedCases() {
		tests = append(tests, struct {
			name       string
			args       []string
			wantStatus int
			wantStderr string
		}{"malformed " + tc.dir, []string{"-C", bad(tc.dir), "-n", tc.target}, 1, tc.want})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(tc.args, &stdout, &stderr)
			if got != tc.wantStatus {
				t.Fatalf("sxmake %s: exit status %d, want %d\nstderr:\n%s", strings.Join(tc.args, " "), got, tc.wantStatus, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("sxmake %s: stderr does not contain %q:\n%s", strings.Join(tc.args, " "), tc.wantStderr, stderr.String())
			}
			if tc.wantStatus == 0 && stderr.Len() != 0 {
				t.Errorf("unexpected stderr:\n%s", stderr.String())
			}
		})
	}
}

type malformedCase struct {
	dir    string // under testdata/malformed
	target string
	want   string // the first line of the error, file:line:col first
}

// malformedCases has one tree per class of definition error.
func malformedCases() []malformedCase {
	return []malformedCase{
		{"syntax", "core-app", "packages/core/app/Containerfile:2:5: unterminated heredoc"},
		{"unknown-instruction", "core-app", "packages/core/app/Containerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"},
		{"unknown-flag", "core-app", "packages/core/app/Containerfile:7:6: unknown flag: --frm (did you mean from?)"},
		{"undefined-stage", "core-app", `packages/core/app/Containerfile:7:1: "biuld" is neither a stage of this Containerfile nor a stagex/ image; did you mean build?`},
		{"missing-package", "core-app", "packages/core/app/Containerfile:1:1: unknown image stagex/core-busybx; did you mean core-busybox?"},
		{"cycle", "core-a", "dependency cycle: core-a -> core-b -> core-c -> core-a"},
		{"bad-toml", "core-app", "packages/core/app/package.toml:3:15: "},
		{"missing-hash", "core-app", "packages/core/app/package.toml:5:1: sources.app: missing hash"},
		{"bad-template", "core-app", "packages/core/app/package.toml:7:1: sources.app.mirrors[0]: unknown template {verison}"},
		{"unknown-key", "core-app", "packages/core/app/package.toml:4:1: unknown key package.platfroms"},
		{"name-mismatch", "core-app", `packages/core/app/package.toml:2:1: package.name "ap" does not match the directory name "app"`},
	}
}

// A Containerfile error keeps its source line and caret when something
// wraps it, as a build for several platforms does (the type assertion
// that rendered it missed wrapped errors).
func TestWrappedErrorKeepsCaret(t *testing.T) {
	tree := filepath.Join(repoTestdata(t), "malformed", "unknown-instruction")
	var stdout, stderr bytes.Buffer
	args := []string{"-C", tree, "--cache-dir", t.TempDir(), "--platform", "linux/amd64,linux/arm64", "core-app"}
	if got := run(args, &stdout, &stderr); got != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", got, stderr.String())
	}
	want := "Containerfile:2:1: unknown instruction: RUNN (did you mean RUN?)\nRUNN echo typo\n^\n"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks the source line and caret %q:\n%s", want, stderr.String())
	}
}

// An unnamed stage has one label everywhere: "stage-N", as BuildKit says.
func TestUnnamedStageLabel(t *testing.T) {
	tree := writeFiles(t, map[string]string{
		"packages/core/anon/package.toml":  "[package]\nname = \"anon\"\nversion = \"1\"\n",
		"packages/core/anon/Containerfile": "FROM scratch\nCOPY a /a\n\nFROM scratch\nCOPY --from=0 /a /b\n",
		"packages/core/anon/a":             "a",
	})
	var stdout, stderr bytes.Buffer
	if got := run([]string{"-C", tree, "--cache-dir", t.TempDir(), "-n", "core-anon"}, &stdout, &stderr); got != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", got, stderr.String())
	}
	for _, want := range []string{
		"target     stage-1\n",
		"stage 0 stage-0 FROM scratch\n",
		"stage 1 stage-1 FROM scratch\n",
		"COPY --from=stage-0 /a /b\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("sxmake -n output lacks %q:\n%s", want, stdout.String())
		}
	}
}
