package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/engine/registry"
)

func newPushCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "push TARGET... REGISTRY/REPO[:TAG]",
		Short: "Push built images, every platform, to a registry",
		Long: `Push the layouts of the targets in out/ (build them first) to a registry,
with every platform their index lists. With one target the image goes to
REGISTRY/REPO[:TAG]; with several, each goes to REGISTRY/REPO/<image>[:TAG].
The tag defaults to latest. Registries on localhost are reached over plain
HTTP. Credentials come from the Docker config (~/.docker/config.json), never
from the command line.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("push needs at least one target and a REGISTRY/REPO")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			tree, err := g.load()
			if err != nil {
				return err
			}
			imgs, err := resolve(tree, args[:len(args)-1])
			if err != nil {
				return err
			}
			repo, tag := splitTag(args[len(args)-1])
			outDir := bf.outDir
			if outDir == "" {
				outDir = tree.OutDir()
			}
			for _, img := range imgs {
				ref := repo + ":" + tag
				if len(imgs) > 1 {
					ref = repo + "/" + img.Name + ":" + tag
				}
				desc, err := registry.Push(cmd.Context(), filepath.Join(outDir, img.Name), ref)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", desc.Digest, ref)
			}
			return nil
		},
	}
}

// splitTag splits "host:port/repo:tag" into the repository and the tag
// (default "latest"); a colon before the last slash is a port.
func splitTag(ref string) (repo, tag string) {
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}
