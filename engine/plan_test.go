package engine

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
	"github.com/stagex/sxmake/rules"
)

func loadDemo(t testing.TB) *packages.Tree {
	t.Helper()
	tree, err := packages.Load(filepath.Join("..", "testdata", "stagex"))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func planOf(t *testing.T, tree *packages.Tree, names ...string) *Plan {
	t.Helper()
	var targets []*packages.Image
	for _, n := range names {
		img, err := tree.Resolve(n)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, img)
	}
	plan, err := NewPlan(tree, targets, WithPlatform(rules.Platform{OS: "linux", Arch: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func (p *Plan) image(name string) *ImagePlan {
	for _, ip := range p.Images {
		if ip.Image.Name == name {
			return ip
		}
	}
	return nil
}

func TestPlanOrder(t *testing.T) {
	tree := loadDemo(t)
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"user-hello", []string{"bootstrap-busybox", "core-filesystem", "core-busybox", "core-musl", "pallet-shell", "user-hello"}},
		{"pallet-clang", []string{"bootstrap-busybox", "core-filesystem", "core-busybox", "core-musl", "core-binutils", "core-gcc", "core-libstdcxx", "core-clang", "pallet-shell", "pallet-clang"}},
		{"bootstrap-stage0", []string{"bootstrap-stage0"}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var got []string
			for _, ip := range planOf(t, tree, tc.target).Images {
				got = append(got, ip.Image.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("build order (-want +got):\n%s", diff)
			}
		})
	}
}

// A dependency's final config reaches the stages built FROM it: the
// pallet's login SHELL wraps the user package's RUNs, its env is extended.
func TestPlanInheritsDependencyConfig(t *testing.T) {
	plan := planOf(t, loadDemo(t), "user-hello")
	shell := plan.image("pallet-shell").Build.Target.Config
	if diff := cmp.Diff([]string{"/bin/sh", "-l", "-c"}, shell.Shell); diff != "" {
		t.Errorf("pallet-shell Shell (-want +got):\n%s", diff)
	}
	build := plan.image("user-hello").Build.Stages[0]
	var run *rules.Step
	for _, s := range build.Steps {
		if s.Kind == rules.Run {
			run = s
			break
		}
	}
	if run == nil {
		t.Fatal("user-hello build stage has no RUN")
	}
	if diff := cmp.Diff([]string{"/bin/sh", "-l", "-c"}, run.Args[:3]); diff != "" {
		t.Errorf("RUN argv starts (-want +got):\n%s", diff)
	}
	if run.Workdir != "/src/hello-2.12.1" {
		t.Errorf("RUN workdir = %q, want /src/hello-2.12.1", run.Workdir)
	}
	wantEnv := []string{
		"PATH=/opt/hello/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PS1=sxmake$ ",
		"VERSION=2.12.1",
	}
	for _, e := range wantEnv {
		if !contains(run.Env, e) {
			t.Errorf("RUN env lacks %q; env is %q", e, run.Env)
		}
	}
	final := plan.image("user-hello").Build.Target.Config
	if final.User != "1000:1000" || final.WorkingDir != "/home/user" {
		t.Errorf("user-hello config User=%q WorkingDir=%q, want 1000:1000 and /home/user", final.User, final.WorkingDir)
	}
}

func TestPlanPlatforms(t *testing.T) {
	plan := planOf(t, loadDemo(t), "bootstrap-stage0", "user-hello")
	if got := plan.image("bootstrap-stage0").Platform.String(); got != "linux/386" {
		t.Errorf("stage0 platform = %s, want linux/386 (package.toml platforms)", got)
	}
	if got := plan.image("bootstrap-busybox").Platform.String(); got != "linux/amd64" {
		t.Errorf("busybox platform = %s, want linux/amd64 (--platform)", got)
	}
}

func TestPlanSubpackageStage(t *testing.T) {
	plan := planOf(t, loadDemo(t), "core-libstdcxx")
	ip := plan.image("core-libstdcxx")
	if ip.Build.Target.Name != "package-libstdcxx" {
		t.Fatalf("target stage = %q, want package-libstdcxx", ip.Build.Target.Name)
	}
	cp := ip.Build.Target.Steps[0]
	if cp.Kind != rules.Copy || cp.From.Kind != rules.StageSource || cp.From.Stage.Name != "build" {
		t.Fatalf("first step of package-libstdcxx = %s, want COPY --from=build", cp)
	}
	if got := cp.Sources[0].Path; got != "/rootfs/usr/lib/libstdc++*" || !cp.Sources[0].Pattern {
		t.Errorf("source = %q (pattern %v), want the glob /rootfs/usr/lib/libstdc++*", got, cp.Sources[0].Pattern)
	}
	args := ip.BuildArgs
	for k, want := range map[string]string{
		"M2_MESOPLANET_VERSION": "0.9.1",
		"M2_MESOPLANET_SOURCE":  "m2-mesoplanet-0.9.1.tar.gz",
		"M2_MESOPLANET_GIT_SHA": "0123456789abcdef0123456789abcdef01234567",
		"VERSION_MAJOR_MINOR":   "13.2",
	} {
		if args[k] != want {
			t.Errorf("build arg %s = %q, want %q", k, args[k], want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BenchmarkPlan600 loads a generated 600-package StageX-shaped tree and
// plans every image: what `sxmake -n` does before printing.
func BenchmarkPlan600(b *testing.B) {
	dir := b.TempDir()
	if err := packagestest.Generate(dir, 600, 1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tree, err := packages.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := NewPlan(tree, tree.Images()); err != nil {
			b.Fatal(err)
		}
	}
}

// Actions and progress lines name an unnamed stage "stage-N", as the rest
// of sxmake does.
func TestUnnamedStageLabel(t *testing.T) {
	st := &rules.Stage{Index: 2}
	if got, want := ActionName("core-x", st, 4), "core-x/stage-2/4"; got != want {
		t.Errorf("ActionName = %q, want %q", got, want)
	}
	step := &rules.Step{Instruction: "USER", CreatedBy: "USER nobody", Pos: rules.Pos{Line: 3, Col: 1}}
	if got, want := describe(st, step), "stage-2 3:1 USER nobody"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
}

// TestPlanFixture plans every image of StageX's own release for StageX's
// default platform. Without the fixture it skips, or fails under
// SXMAKE_TEST_ROOT=1.
func TestPlanFixture(t *testing.T) {
	tree, err := packages.Load(packagestest.Fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(tree, tree.Images(), WithPlatform(rules.Platform{OS: "linux", Arch: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Images) != packagestest.FixtureImages {
		t.Errorf("planned %d images, want %d", len(plan.Images), packagestest.FixtureImages)
	}
	for _, tc := range []struct{ image, platform, target string }{
		{"bootstrap-stage0", "linux/386", "package"},
		{"core-llvm", "linux/amd64", "package-llvm"},
		{"core-clang", "linux/amd64", "package-clang"},
		{"pallet-clang", "linux/amd64", ""}, // its last stage has no name
	} {
		ip := plan.image(tc.image)
		if ip == nil {
			t.Errorf("%s not planned", tc.image)
			continue
		}
		if got := ip.Platform.String(); got != tc.platform {
			t.Errorf("%s: platform %s, want %s", tc.image, got, tc.platform)
		}
		if got := ip.Build.Target.Name; got != tc.target {
			t.Errorf("%s: target stage %q, want %q", tc.image, got, tc.target)
		}
	}
}
