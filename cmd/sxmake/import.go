package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/engine/registry"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

func newImportCmd(g *globalFlags) *cobra.Command {
	var rootfs bool
	cmd := &cobra.Command{
		Use:   "import NAME SOURCE",
		Short: "Import an image from outside the tree as stagex/NAME",
		Long: `Import an image built elsewhere into the cache as the image stagex/NAME
(NAME like core-busybox), which Containerfiles of any tree may then use in
FROM and COPY --from without building it. A package of the tree with the
same name is built instead.

SOURCE is an OCI image layout directory (such as out/<stage>-<name>/), an
OCI archive or a docker-archive tarball (docker save), plain or gzipped,
or docker://HOST/REPO[:TAG]@sha256:DIGEST, an image in a registry pinned by
its digest (credentials from the Docker config);
with --rootfs, a root file system tarball, made into a one-layer image
whose file times are clamped to SOURCE_DATE_EPOCH=1, reproducibly. From an
index, the manifest of --platform is imported (default linux/amd64).

Every blob is checked against its digest as it is copied into the cache.
Gzipped layers are kept as they are; uncompressed ones are gzipped, which
gives the imported image a new manifest. The manifest digest imported is
printed as "<sha256> NAME".`,
		Args: exactArgs(2, "NAME and SOURCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			p := image.Platform{OS: "linux", Architecture: "amd64"}
			if g.platform != "" {
				rp, err := rules.ParsePlatform(g.platform)
				if err != nil {
					return usagef("--platform: %v", err)
				}
				p = image.Platform{OS: rp.OS, Architecture: rp.Arch, Variant: rp.Variant}
			}
			pulled, err := os.MkdirTemp("", "sxmake-pull-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(pulled)
			src, err := readSource(cmd.Context(), path, pulled, rootfs, p)
			if err != nil {
				return err
			}
			defer src.Close()
			abs, _ := filepath.Abs(path)
			if strings.HasPrefix(path, "docker://") {
				abs = path
			}
			c, err := openCache(cmd.Context(), cmd.ErrOrStderr(), g.cacheDir())
			if err != nil {
				return err
			}
			defer c.Close()
			rec, err := engine.NewImports(c).Add(name, src, abs)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", rec.Manifest.Hex(), rec.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rootfs, "rootfs", false, "SOURCE is a root file system tarball, not an image")
	return cmd
}

// readSource opens what `sxmake import` imports.
//
// A docker:// source is pulled into dir (a temporary directory the caller
// removes after the import) and read from there.
func readSource(ctx context.Context, path, dir string, rootfs bool, p image.Platform) (*image.Source, error) {
	if ref, ok := strings.CutPrefix(path, "docker://"); ok {
		if err := registry.Pull(ctx, ref, dir); err != nil {
			return nil, err
		}
		return image.ReadLayout(dir, image.ForPlatform(p))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	switch {
	case rootfs && fi.IsDir():
		return nil, usagef("--rootfs %s: want a tarball, not a directory", path)
	case rootfs:
		return image.ReadRootfs(path, time.Unix(packages.SourceDateEpoch, 0), image.ForPlatform(p))
	case fi.IsDir():
		return image.ReadLayout(path, image.ForPlatform(p))
	}
	return image.ReadArchive(path, image.ForPlatform(p))
}
