package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List every image of the tree, one per line",
		Long: `List every image of the package tree, one per line: the image name first,
then its package directory and, for a subpackage, its Containerfile stage.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tree, err := g.load()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, img := range tree.Images() {
				line := img.Name + "\tpackages/" + img.Package.Stage + "/" + img.Package.Name
				if img.Target != "" {
					line += "\t" + img.Target
				}
				fmt.Fprintln(w, safeLine(line))
			}
			return nil
		},
	}
}
