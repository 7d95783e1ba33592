package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/stagex/sxmake/cache"
)

// keyVersion is the first line of every action's inputs. Change it when
// the encoding or the meaning of an action's output changes, so that no
// old result is reused.
const keyVersion = "sxmake action v1"

// inputs collects the labelled lines an action key is computed from, like
// cmd/go's buildActionID: each line is "label value", so a dump of the
// inputs (and the diff of two dumps, for --explain) reads naturally.
// Values are quoted when they contain a newline, so one input is one line.
type inputs struct {
	lines []string
}

func newInputs() *inputs { return &inputs{lines: []string{keyVersion}} }

// add appends one labelled input.
func (in *inputs) add(label, value string) {
	if strings.ContainsAny(value, "\n\r") || strings.TrimSpace(value) != value {
		value = fmt.Sprintf("%q", value)
	}
	in.lines = append(in.lines, label+" "+value)
}

// addf appends one labelled input built from a format.
func (in *inputs) addf(label, format string, args ...any) {
	in.add(label, fmt.Sprintf(format, args...))
}

// key hashes the lines with BLAKE3. Lines are length-prefixed, so no two
// different input lists hash alike by shifting bytes between lines.
func (in *inputs) key() cache.ActionKey {
	n := 0
	for _, l := range in.lines {
		n += len(l) + 8
	}
	buf := make([]byte, 0, n)
	for _, l := range in.lines {
		buf = strconv.AppendInt(buf, int64(len(l)), 10)
		buf = append(buf, ':')
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	return cache.ActionKey(blake3.Sum256(buf))
}

// explain returns the lines of now that differ from the lines of before,
// one message per changed input, in the order of now. Inputs are matched
// by label; a label that repeats (several sources) is matched by position
// among lines of that label.
func explain(before, now []string) []string {
	type labelled struct {
		label string
		n     int
	}
	index := func(lines []string) (map[labelled]string, []labelled) {
		m := make(map[labelled]string, len(lines))
		var order []labelled
		count := map[string]int{}
		for _, l := range lines {
			label, value, _ := strings.Cut(l, " ")
			id := labelled{label, count[label]}
			count[label]++
			m[id] = value
			order = append(order, id)
		}
		return m, order
	}
	old, oldOrder := index(before)
	cur, curOrder := index(now)
	var out []string
	for _, id := range curOrder {
		v, ok := old[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s added: %s", id.label, cur[id]))
		case v != cur[id]:
			out = append(out, fmt.Sprintf("%s changed: %s -> %s", id.label, v, cur[id]))
		}
	}
	for _, id := range oldOrder {
		if _, ok := cur[id]; !ok {
			out = append(out, fmt.Sprintf("%s removed: %s", id.label, old[id]))
		}
	}
	return out
}
