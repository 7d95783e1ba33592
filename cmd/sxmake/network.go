package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// The network allowlist: images whose RUN steps may use the host network,
// besides those of --allow-network. It belongs to the user, never to the
// package tree: a package must not grant itself the network.
const allowlistName = "allow-network"

// defaultAllowlist is $XDG_CONFIG_HOME/sxmake/allow-network, or
// ~/.config/sxmake/allow-network.
func defaultAllowlist() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "sxmake", allowlistName)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "sxmake", allowlistName)
}

// allowlistPath is --allow-network-file, or the default allowlist.
func (bf *buildFlags) allowlistPath() string {
	if bf.networkFile != "" {
		return bf.networkFile
	}
	return defaultAllowlist()
}

// networkImages returns the images allowed the network: --allow-network's
// and the allowlist file's. The default allowlist may be missing; a file
// named by --allow-network-file may not.
func (bf *buildFlags) networkImages() ([]string, error) {
	names := append([]string(nil), bf.network...)
	path := bf.allowlistPath()
	if path == "" {
		return names, nil
	}
	listed, err := readAllowlist(path)
	if errors.Is(err, os.ErrNotExist) && bf.networkFile == "" {
		return names, nil
	}
	if err != nil {
		return nil, err
	}
	return append(names, listed...), nil
}

// readAllowlist reads an allowlist: one image name a line (core-llvm or
// stagex/core-llvm); blank lines and lines starting with # are ignored.
func readAllowlist(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network allowlist: %w", err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			col := strings.Index(raw, line) + i + 1 // at the blank after the first name
			return nil, &rules.Error{Pos: rules.Pos{File: path, Line: n, Col: col}, Msg: fmt.Sprintf("one image name a line, have %q", line), Source: raw}
		}
		names = append(names, packages.ImageName(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("network allowlist %s: %w", path, err)
	}
	return names, nil
}

// offlineHint adds to the error of a build where a step that StageX runs
// online failed offline where the allowlist is.
func (bf *buildFlags) offlineHint(err error) error {
	var oe *engine.OfflineError
	if !errors.As(err, &oe) {
		return err
	}
	if path := bf.allowlistPath(); path != "" {
		return fmt.Errorf("%w\n(or add the line %q to %s to allow it in every build)", err, oe.Image, path)
	}
	return err
}
