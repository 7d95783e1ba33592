package packages

import (
	"container/heap"
	"fmt"
	"strings"
)

// Closure returns the targets and every image they need, directly or not,
// dependencies before the images that need them. Among images whose
// dependencies are all placed, the smallest name comes first, so the order
// depends only on the tree. A dependency cycle is an error that prints the
// cycle and where each of its references is.
func (t *Tree) Closure(targets ...*Image) ([]*Image, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := make(map[*Image]int)
	var stack []*Image
	var visit func(img *Image) error
	visit = func(img *Image) error {
		switch state[img] {
		case visiting:
			return cycleError(stack, img)
		case done:
			return nil
		}
		state[img] = visiting
		stack = append(stack, img)
		for _, d := range img.Deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[img] = done
		return nil
	}
	for _, img := range sortedImages(targets) {
		if err := visit(img); err != nil {
			return nil, err
		}
	}
	return topoOrder(state), nil
}

// sortedImages returns imgs sorted by name without modifying imgs.
func sortedImages(imgs []*Image) []*Image {
	s := append([]*Image(nil), imgs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Name < s[j-1].Name; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// topoOrder orders the acyclic image set (the keys of set) with Kahn's
// algorithm, taking the smallest ready name first.
func topoOrder[V any](set map[*Image]V) []*Image {
	pending := make(map[*Image]int, len(set))
	users := make(map[*Image][]*Image, len(set))
	ready := &nameHeap{}
	for img := range set {
		pending[img] = len(img.Deps)
		for _, d := range img.Deps {
			users[d] = append(users[d], img)
		}
		if len(img.Deps) == 0 {
			heap.Push(ready, img)
		}
	}
	order := make([]*Image, 0, len(set))
	for ready.Len() > 0 {
		img := heap.Pop(ready).(*Image)
		order = append(order, img)
		for _, u := range users[img] {
			if pending[u]--; pending[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	return order
}

type nameHeap []*Image

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i].Name < h[j].Name }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(*Image)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// cycleError describes the cycle that closes when the image at the top of
// stack references again: stack from again's position onward, then again.
// The cycle is rotated to start at its smallest name so that it reads the
// same whichever image the search entered it from.
func cycleError(stack []*Image, again *Image) error {
	start := 0
	for i, img := range stack {
		if img == again {
			start = i
		}
	}
	cycle := stack[start:]
	low := 0
	for i, img := range cycle {
		if img.Name < cycle[low].Name {
			low = i
		}
	}
	cycle = append(append([]*Image(nil), cycle[low:]...), cycle[:low]...)
	names := make([]string, 0, len(cycle)+1)
	var where []string
	for i, img := range cycle {
		next := cycle[(i+1)%len(cycle)]
		names = append(names, img.Name)
		pos := img.refs[next]
		where = append(where, fmt.Sprintf("\t%s:%d:%d: %s references stagex/%s", pos.File, pos.Line, pos.Col, img.Name, next.Name))
	}
	names = append(names, cycle[0].Name)
	first := cycle[0].refs[cycle[1%len(cycle)]]
	msg := "dependency cycle: " + strings.Join(names, " -> ") + "\n" + strings.Join(where, "\n")
	return newError(first, cycle[0].Package.src, msg)
}
