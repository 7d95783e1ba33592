package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/packages"
)

func newGraphCmd(g *globalFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph [--format tree|dot] TARGET...",
		Short: "Print the dependency graph of images",
		Long: `Print the images the targets need.

--format tree (default) prints each target with its dependencies indented
below it; an image already printed is shown once more with "(*)" and not
expanded again. --format dot prints a Graphviz digraph, edges from an image
to what it needs.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("graph needs at least one target")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "tree" && format != "dot" {
				return usagef("unknown --format %q (want tree or dot)", format)
			}
			tree, err := g.load()
			if err != nil {
				return err
			}
			targets, err := resolve(tree, args)
			if err != nil {
				return err
			}
			order, err := tree.Closure(targets...)
			if err != nil {
				return err
			}
			if format == "dot" {
				writeDot(cmd.OutOrStdout(), order)
				return nil
			}
			for _, t := range targets {
				writeTree(cmd.OutOrStdout(), t, "", "", map[*packages.Image]bool{})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "tree", "output format: tree or dot")
	return cmd
}

// writeTree prints img and, below it, the images it needs.
func writeTree(w io.Writer, img *packages.Image, first, rest string, seen map[*packages.Image]bool) {
	if seen[img] && len(img.Deps) > 0 {
		fmt.Fprintf(w, "%s%s (*)\n", first, safeLine(img.Name))
		return
	}
	seen[img] = true
	fmt.Fprintf(w, "%s%s\n", first, safeLine(img.Name))
	for i, d := range img.Deps {
		if i == len(img.Deps)-1 {
			writeTree(w, d, rest+"└── ", rest+"    ", seen)
		} else {
			writeTree(w, d, rest+"├── ", rest+"│   ", seen)
		}
	}
}

// writeDot prints the closure as a Graphviz digraph in build order.
func writeDot(w io.Writer, order []*packages.Image) {
	fmt.Fprintln(w, "digraph sxmake {")
	for _, img := range order {
		fmt.Fprintf(w, "\t%q;\n", img.Name)
		for _, d := range img.Deps {
			fmt.Fprintf(w, "\t%q -> %q;\n", img.Name, d.Name)
		}
	}
	fmt.Fprintln(w, "}")
}
