package packages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/rules"
)

const (
	hashA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
	hashB = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
	hashC = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
	hashD = "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
)

func loadTree(t testing.TB) *Tree {
	t.Helper()
	tree, err := Load("testdata/tree")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return tree
}

// packageView is what a user of Package relies on, without the parsed
// Containerfile.
type packageView struct {
	Stage, Name, Dir              string
	Version, VersionFrom          string
	Description, License, Website string
	Subpackages                   []string
	Platforms                     []rules.Platform
	Sources                       []Source
	TOMLPath, ContainerfilePath   string
}

func view(p *Package) packageView {
	return packageView{
		Stage: p.Stage, Name: p.Name, Dir: p.Dir,
		Version: p.Version, VersionFrom: p.VersionFrom,
		Description: p.Description, License: p.License, Website: p.Website,
		Subpackages: p.Subpackages, Platforms: p.Platforms, Sources: p.Sources,
		TOMLPath: p.TOMLPath, ContainerfilePath: p.ContainerfilePath,
	}
}

func TestLoadPackages(t *testing.T) {
	tree := loadTree(t)
	root, err := filepath.Abs("testdata/tree")
	if err != nil {
		t.Fatal(err)
	}
	if tree.Root != root {
		t.Errorf("Root = %q, want %q", tree.Root, root)
	}
	var ids []string
	for _, p := range tree.Packages {
		ids = append(ids, p.ID())
	}
	wantIDs := []string{"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-filesystem", "core-gcc", "core-llvm", "pallet-clang", "pallet-gcc", "user-hello", "user-zip"}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("package IDs (-want +got):\n%s", diff)
	}
	// Directories without a Containerfile or a package.toml are not
	// packages (StageX's generator skips them).
	wantSkipped := []Skip{
		{Dir: "packages/user/mesa", Reason: "no package.toml"},
		{Dir: "packages/user/notes", Reason: "no Containerfile"},
	}
	if diff := cmp.Diff(wantSkipped, tree.Skipped); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
	if got, want := tree.FetchDir(tree.Package("core-llvm")), filepath.Join(root, "fetch", "core", "llvm"); got != want {
		t.Errorf("FetchDir = %q, want %q", got, want)
	}
	dir := func(rel string) string { return filepath.Join(root, "packages", rel) }
	tests := []struct {
		id   string
		want packageView
	}{
		{"bootstrap-stage0", packageView{
			Stage: "bootstrap", Name: "stage0", Dir: dir("bootstrap/stage0"),
			Version:     "1.6.0",
			Description: "Bootstrap seed from hex0", License: "MIT", Website: "https://github.com/oriansj/stage0-posix",
			Platforms: []rules.Platform{{OS: "linux", Arch: "386"}},
			Sources: []Source{{
				Key: "stage0", Hash: hashA, File: "stage0-posix-1.6.0.tar.gz", Format: "tar.gz",
				Mirrors: []string{
					"https://github.com/oriansj/stage0-posix/releases/download/Release_1.6.0/stage0-posix-1.6.0.tar.gz",
					"https://mirror.example.org/stage0/stage0-posix-1.6.0.tar.gz",
				},
			}},
			TOMLPath: dir("bootstrap/stage0/package.toml"), ContainerfilePath: dir("bootstrap/stage0/Containerfile"),
		}},
		{"bootstrap-stage1", packageView{
			Stage: "bootstrap", Name: "stage1", Dir: dir("bootstrap/stage1"),
			Version:   "1.6.0",
			Platforms: []rules.Platform{{OS: "linux", Arch: "386"}},
			Sources: []Source{{
				Key: "mes", Hash: hashB, File: "mes-1.6.tar.gz", Format: "tar.gz",
				Mirrors: []string{"https://ftp.gnu.org/gnu/mes/mes-1.6.tar.gz"},
			}},
			TOMLPath: dir("bootstrap/stage1/package.toml"), ContainerfilePath: dir("bootstrap/stage1/Containerfile"),
		}},
		{"core-filesystem", packageView{
			Stage: "core", Name: "filesystem", Dir: dir("core/filesystem"),
			Description: "No version: no VERSION* build args, tagged latest",
			TOMLPath:    dir("core/filesystem/package.toml"), ContainerfilePath: dir("core/filesystem/Containerfile"),
		}},
		{"core-gcc", packageView{
			Stage: "core", Name: "gcc", Dir: dir("core/gcc"),
			Version: "13.2.0-r1", License: "GPL-3.0-or-later",
			Sources: []Source{{
				Key: "gcc", Hash: hashD, File: "gcc-13.2.0.tar.xz", Format: "tar.xz",
				Mirrors: []string{"https://ftp.gnu.org/gnu/gcc/gcc-13.2.0/gcc-13.2.0.tar.xz"},
			}},
			TOMLPath: dir("core/gcc/package.toml"), ContainerfilePath: dir("core/gcc/Containerfile"),
		}},
		{"core-llvm", packageView{
			Stage: "core", Name: "llvm", Dir: dir("core/llvm"),
			Version:     "20.1.8",
			Subpackages: []string{"llvm", "clang", "lld"},
			Sources: []Source{
				{
					Key: "M2_Mesoplanet", Hash: hashB, File: "M2-Mesoplanet-1-11-0.tar.gz", Version: "1.11.0",
					GitSHA:  "0123456789abcdef0123456789abcdef01234567",
					Mirrors: []string{"https://git.example.org/M2-Mesoplanet/archive/Release_1_11_0.tar.gz?sha=1"},
				},
				{
					Key: "llvm", Hash: hashA, File: "llvm-project-20.1.8.src.tar.xz", Format: "tar.xz",
					Mirrors: []string{"https://github.com/llvm/llvm-project/releases/download/llvmorg-20.1.8/llvm-project-20.1.8.src.tar.xz"},
				},
			},
			TOMLPath: dir("core/llvm/package.toml"), ContainerfilePath: dir("core/llvm/Containerfile"),
		}},
		{"pallet-clang", packageView{
			Stage: "pallet", Name: "clang", Dir: dir("pallet/clang"),
			Version: "20.1.8", VersionFrom: "core-clang",
			TOMLPath: dir("pallet/clang/package.toml"), ContainerfilePath: dir("pallet/clang/Containerfile"),
		}},
		{"user-hello", packageView{
			Stage: "user", Name: "hello", Dir: dir("user/hello"),
			Version: "20.1.8", VersionFrom: "pallet-clang",
			Sources: []Source{{
				Key: "hello", Hash: hashC, File: "hello-2_12.zip", Version: "2.12",
				Mirrors: []string{"https://example.org/hello/hello-2_12.zip"},
			}},
			TOMLPath: dir("user/hello/package.toml"), ContainerfilePath: dir("user/hello/Containerfile"),
		}},
		{"user-zip", packageView{
			Stage: "user", Name: "zip", Dir: dir("user/zip"),
			Version:     "30",
			Description: "A version without a dot: VERSION_MAJOR_MINOR is None, as StageX's generator prints it",
			Sources: []Source{{
				Key: "zip", Hash: hashD, File: "zip30-None.tar.gz", Format: "tar.gz",
				Mirrors: []string{"https://example.org/zip/zip30-None.tar.gz"},
			}},
			TOMLPath: dir("user/zip/package.toml"), ContainerfilePath: dir("user/zip/Containerfile"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			p := tree.Package(tc.id)
			if p == nil {
				t.Fatalf("Package(%q) = nil", tc.id)
			}
			if p.Containerfile == nil {
				t.Errorf("Containerfile not parsed")
			}
			if diff := cmp.Diff(tc.want, view(p)); diff != "" {
				t.Errorf("package (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildArgs(t *testing.T) {
	tree := loadTree(t)
	tests := []struct {
		id   string
		want map[string]string
	}{
		{"core-gcc", map[string]string{
			"VERSION":              "13.2.0-r1",
			"VERSION_UNDER":        "13_2_0-r1",
			"VERSION_DASH":         "13-2-0-r1",
			"VERSION_MAJOR":        "13",
			"VERSION_MAJOR_MINOR":  "13.2",
			"VERSION_STRIP_SUFFIX": "13.2.0",
			"SOURCE_DATE_EPOCH":    "1",
			rules.CheckArg:         StageXChecks,
		}},
		{"core-llvm", map[string]string{
			"VERSION":               "20.1.8",
			"VERSION_UNDER":         "20_1_8",
			"VERSION_DASH":          "20-1-8",
			"VERSION_MAJOR":         "20",
			"VERSION_MAJOR_MINOR":   "20.1",
			"VERSION_STRIP_SUFFIX":  "20.1.8",
			"M2_MESOPLANET_VERSION": "1.11.0",
			// StageX's generator expands {version_dash} with the
			// package's version here (the file fetched is
			// M2-Mesoplanet-1-11-0.tar.gz).
			"M2_MESOPLANET_SOURCE":  "M2-Mesoplanet-20-1-8.tar.gz",
			"M2_MESOPLANET_GIT_SHA": "0123456789abcdef0123456789abcdef01234567",
			"SOURCE_DATE_EPOCH":     "1",
			rules.CheckArg:          StageXChecks,
		}},
		{"user-hello", map[string]string{
			"VERSION":              "20.1.8",
			"VERSION_UNDER":        "20_1_8",
			"VERSION_DASH":         "20-1-8",
			"VERSION_MAJOR":        "20",
			"VERSION_MAJOR_MINOR":  "20.1",
			"VERSION_STRIP_SUFFIX": "20.1.8",
			"HELLO_VERSION":        "2.12",
			// Without file, the last segment of the first mirror as
			// written, with the package's {version_under}.
			"HELLO_SOURCE":      "hello-20_1_8.zip",
			"SOURCE_DATE_EPOCH": "1",
			rules.CheckArg:      StageXChecks,
		}},
		{"core-filesystem", map[string]string{"SOURCE_DATE_EPOCH": "1", rules.CheckArg: StageXChecks}},
		{"user-zip", map[string]string{
			"VERSION":              "30",
			"VERSION_UNDER":        "30",
			"VERSION_DASH":         "30",
			"VERSION_MAJOR":        "30",
			"VERSION_MAJOR_MINOR":  "None",
			"VERSION_STRIP_SUFFIX": "30",
			"SOURCE_DATE_EPOCH":    "1",
			rules.CheckArg:         StageXChecks,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			p := tree.Package(tc.id)
			got := p.BuildArgs()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("BuildArgs (-want +got):\n%s", diff)
			}
			got["VERSION"] = "changed"
			if p.BuildArgs()["VERSION"] == "changed" {
				t.Errorf("BuildArgs returned the package's own map")
			}
		})
	}
}

func TestVersionVars(t *testing.T) {
	tests := []struct {
		version string
		want    map[string]string
	}{
		{"1", map[string]string{"version": "1", "version_under": "1", "version_dash": "1", "version_major": "1", "version_major_minor": "None", "version_strip_suffix": "1"}},
		{"1.2", map[string]string{"version": "1.2", "version_under": "1_2", "version_dash": "1-2", "version_major": "1", "version_major_minor": "1.2", "version_strip_suffix": "1.2"}},
		{"3.4.5.6-rc1-x", map[string]string{"version": "3.4.5.6-rc1-x", "version_under": "3_4_5_6-rc1-x", "version_dash": "3-4-5-6-rc1-x", "version_major": "3", "version_major_minor": "3.4", "version_strip_suffix": "3.4.5.6"}},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, versionVars(tc.version)); diff != "" {
				t.Errorf("versionVars (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"version": "1.2", "format": "tar.xz"}
	tests := []struct {
		tmpl, want, err string
	}{
		{tmpl: "plain", want: "plain"},
		{tmpl: "a-{version}.{format}", want: "a-1.2.tar.xz"},
		{tmpl: "{version}{version}", want: "1.21.2"},
		{tmpl: "a-{vers}", err: "unknown template {vers}"},
		{tmpl: "a-{version", err: `unterminated { in "a-{version"`},
		{tmpl: "a-{ver{sion}", err: `unterminated { in "a-{ver{sion}"`},
		{tmpl: "a-}", err: `unmatched } in "a-}"`},
		{tmpl: "{}", err: "unknown template {}"},
		{tmpl: "{{version}}-{version}}}", want: "{version}-1.2}"},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := expand(tc.tmpl, vars)
			if diff := cmp.Diff(tc.err, errText(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got != tc.want {
				t.Errorf("expand = %q, want %q", got, tc.want)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDirsStayInTree: fetch/ and out/ are resolved inside the tree, so
// symbolic links committed to a hostile tree never lead Fetch's writes, a
// COPY's reads or the layouts outside it.
func TestDirsStayInTree(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "packages/core/foo/package.toml"), []byte("[package]\nname = \"foo\"\nversion = \"1.0\"\n\n[sources.foo]\nhash = \""+hashA+"\"\nmirrors = [\"https://example.org/foo.tar.gz\"]\n"))
	writeFile(t, filepath.Join(root, "packages/core/foo/Containerfile"), []byte("FROM scratch AS package\n"))
	links := map[string]string{
		"fetch":       outside,                // absolute, out of the tree
		"out":         "../../../../../../..", // relative, climbing out
		"digests":     "/",
		"fetch2/core": outside,
	}
	for name, target := range links {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{tree.FetchDir(tree.Package("core-foo")), tree.OutDir(), tree.Dir("digests"), tree.Dir("fetch2", "core", "foo")} {
		if !strings.HasPrefix(dir, real+string(filepath.Separator)) && dir != real {
			t.Errorf("%s is outside the tree %s", dir, real)
		}
	}
	pkg := tree.Package("core-foo")
	pkg.Sources[0].Mirrors = []string{newFileServer(t, []byte("a"), serveOK).URL + "/foo.tar.gz"}
	if err := pkg.Fetch(context.Background(), tree.FetchDir(pkg), FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("Fetch wrote outside the tree: %v", entries)
	}
}

// TestDefinitionsStayInTree: a package.toml or Containerfile committed as
// a symbolic link out of the tree, or to a device, is refused without
// being read: a hostile tree must not print the first line of /etc/shadow
// in a parse error, nor make Load read /dev/zero until memory runs out.
func TestDefinitionsStayInTree(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, []byte("root:secret-hash:1::\n"))
	tests := []struct {
		file, target, want string
	}{
		{"Containerfile", outside, "path escapes from parent"},
		{"package.toml", outside, "path escapes from parent"},
		{"Containerfile", "../../../../../../../../../../" + outside, "path escapes from parent"},
		{"Containerfile", "/dev/zero", "path escapes from parent"},
		{"Containerfile", "../fifo", "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"->"+tt.target, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "packages/core/foo")
			files := map[string]string{
				"package.toml":  "[package]\nname = \"foo\"\nversion = \"1.0\"\n",
				"Containerfile": "FROM scratch AS package\n",
			}
			for name, text := range files {
				if name != tt.file {
					writeFile(t, filepath.Join(dir, name), []byte(text))
				}
			}
			if err := syscall.Mkfifo(filepath.Join(root, "packages/core/fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.target, filepath.Join(dir, tt.file)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := Load(root)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute): // a bound, not a speed: a FIFO blocks for good
				t.Fatal("Load still reading after a minute")
			}
			want := "packages/core/foo/" + tt.file + ":"
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want %s... %s", err, want, tt.want)
			}
			if strings.Contains(err.Error(), "secret-hash") {
				t.Errorf("the error shows the file outside the tree: %v", err)
			}
		})
	}
}
