package cache

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestImages(t *testing.T) {
	dir := t.TempDir()
	s := OpenImages(dir)
	if names, err := s.Names(); err != nil || names != nil {
		t.Fatalf("Names of an empty cache = %v, %v; want none", names, err)
	}
	a := ImportedImage{Name: "core-busybox", MediaType: "application/vnd.oci.image.manifest.v1+json", Manifest: DigestOf([]byte("a")), Size: 1, Platform: "linux/amd64", Source: "/x"}
	b := ImportedImage{Name: "pallet-gcc", Manifest: DigestOf([]byte("b")), Size: 2, Platform: "linux/arm64"}
	for _, img := range []ImportedImage{a, b} {
		if err := s.Put(img); err != nil {
			t.Fatal(err)
		}
	}
	a.Size = 3 // importing again replaces the record
	if err := s.Put(a); err != nil {
		t.Fatal(err)
	}
	s = OpenImages(dir)
	names, err := s.Names()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"core-busybox", "pallet-gcc"}, names); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	for _, want := range []ImportedImage{a, b} {
		got, err := s.Get(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get(%s) (-want +got):\n%s", want.Name, diff)
		}
	}
	for _, name := range []string{"core-missing", "../etc/passwd", "Upper"} {
		if _, err := s.Get(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", name, err)
		}
	}
	for _, name := range []string{"", "a/b", "../x", "Core"} {
		if err := s.Put(ImportedImage{Name: name}); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", name)
		}
	}
}
