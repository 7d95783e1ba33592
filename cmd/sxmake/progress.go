package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/stagex/sxmake/engine"
)

// progress renders build events for a person or a machine.
type progress interface {
	event(engine.Event)
	close()
}

// newProgress picks the renderer: JSON lines on stdout with --json, live
// lines on a terminal, plain lines otherwise.
func newProgress(mode string, jsonOut bool, stdout, stderr io.Writer) (progress, error) {
	if jsonOut {
		return &jsonProgress{enc: json.NewEncoder(stdout)}, nil
	}
	switch mode {
	case "plain":
		return &plainProgress{w: stderr}, nil
	case "tty":
		return newTTYProgress(stderr), nil
	case "auto", "":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return newTTYProgress(stderr), nil
		}
		return &plainProgress{w: stderr}, nil
	}
	return nil, usagef("unknown --progress %q (want auto, tty or plain)", mode)
}

// plainProgress prints one line per action event, for logs and pipes.
type plainProgress struct {
	mu       sync.Mutex
	w        io.Writer
	emulated emulationNotice
}

func (p *plainProgress) close() {}

func (p *plainProgress) event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	image, action := safeLine(ev.Image), safeLine(ev.Action)
	p.emulated.print(p.w, ev)
	switch ev.Kind {
	case engine.ActionStarted:
		fmt.Fprintf(p.w, "[%s] run    %s\n", image, action)
	case engine.ActionCached:
		fmt.Fprintf(p.w, "[%s] cached %s\n", image, action)
	case engine.ActionDone:
		fmt.Fprintf(p.w, "[%s] done   %s (%.2fs)\n", image, action, ev.Duration.Seconds())
	case engine.ActionFailed, engine.ImageSkipped:
		printFailure(p.w, ev)
	case engine.ImageDone:
		fmt.Fprintf(p.w, "[%s] image  %s\n", image, ev.Digest)
	case engine.ImagePublished:
		fmt.Fprintf(p.w, "[%s] published %s\n", image, ev.Digest)
	case engine.CacheWarning:
		fmt.Fprintf(p.w, "[%s] warning %s: %s\n", image, action, safe(fmt.Sprint(ev.Err)))
	case engine.CheckWarning:
		printCheckWarning(p.w, ev)
	}
}

// printCheckWarning prints a Dockerfile check's finding that does not
// fail the build.
func printCheckWarning(w io.Writer, ev engine.Event) {
	fmt.Fprintf(w, "[%s] warning %s\n", safeLine(ev.Image), safe(fmt.Sprint(ev.Finding)))
}

// emulationNotice says, once per emulator, that RUN steps run emulated.
type emulationNotice map[string]bool

// print prints the notice for ev's emulator unless it was printed.
func (n *emulationNotice) print(w io.Writer, ev engine.Event) {
	if ev.Emulator == "" || (*n)[ev.Emulator] {
		return
	}
	if *n == nil {
		*n = emulationNotice{}
	}
	(*n)[ev.Emulator] = true
	fmt.Fprintf(w, "sxmake: RUN steps run emulated on this host, through %s (qemu-user-static in binfmt_misc): "+
		"what a program learns of the machine (uname -m, CPU features) can differ from a native build, and so can what it writes\n", ev.Emulator)
}

// printFailure prints a failed action with the tail of its log, which
// is the step's: every line is made safe for a terminal.
func printFailure(w io.Writer, ev engine.Event) {
	image := safeLine(ev.Image)
	if ev.Kind == engine.ImageSkipped {
		fmt.Fprintf(w, "[%s] skipped: %s\n", image, safe(fmt.Sprint(ev.Err)))
		return
	}
	fmt.Fprintf(w, "[%s] FAILED %s: %s\n", image, safeLine(ev.Action), safe(fmt.Sprint(ev.Err)))
	for _, l := range lastLines(ev.Log, 20) {
		fmt.Fprintf(w, "[%s] | %s\n", image, safeLine(l))
	}
}

// lastLines returns the last n lines of text.
func lastLines(text []byte, n int) []string {
	lines := strings.Split(strings.TrimRight(string(text), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// jsonProgress writes each event as one JSON object per line.
type jsonProgress struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// jsonEvent is the wire form of an event.
type jsonEvent struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Image    string    `json:"image"`
	Platform string    `json:"platform,omitempty"`
	Action   string    `json:"action,omitempty"`
	Log      string    `json:"log,omitempty"`
	Seconds  float64   `json:"seconds,omitempty"`
	Process  float64   `json:"process_seconds,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	Emulator string    `json:"emulator,omitempty"`
	Error    string    `json:"error,omitempty"`
	Explain  []string  `json:"explain,omitempty"`
	*findingJSON
}

func (p *jsonProgress) close() {}

func (p *jsonProgress) event(ev engine.Event) {
	je := jsonEvent{
		Time: time.Now().UTC(), Kind: ev.Kind.String(), Image: ev.Image, Platform: ev.Platform, Action: ev.Action,
		Log: string(ev.Log), Seconds: ev.Duration.Seconds(), Process: ev.Process.Seconds(), Explain: ev.Explain,
		Emulator: ev.Emulator,
	}
	if ev.Kind == engine.ImageDone || ev.Kind == engine.ImagePublished {
		je.Digest = ev.Digest.String()
	}
	if ev.Err != nil {
		je.Error = ev.Err.Error()
	}
	if ev.Finding != nil {
		je.findingJSON = newFindingJSON(*ev.Finding)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enc.Encode(je)
}

// ttyProgress keeps one live line per running action (elapsed time and the
// last line of its output) below the lines of finished work.
type ttyProgress struct {
	mu      sync.Mutex
	w       io.Writer
	running map[string]*liveAction // by image + action
	drawn   int                    // live lines on screen
	stop    chan struct{}
	done    chan struct{}

	emulated emulationNotice
}

type liveAction struct {
	image, action string
	start         time.Time
	last          string
}

func newTTYProgress(w io.Writer) *ttyProgress {
	p := &ttyProgress{w: w, running: map[string]*liveAction{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.mu.Lock()
				p.redraw()
				p.mu.Unlock()
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

func (p *ttyProgress) close() {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
}

func (p *ttyProgress) event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := ev.Image + "\x00" + ev.Action
	p.erase()
	p.emulated.print(p.w, ev)
	switch ev.Kind {
	case engine.ActionStarted:
		p.running[id] = &liveAction{image: ev.Image, action: ev.Action, start: time.Now()}
	case engine.ActionLog:
		if a := p.running[id]; a != nil {
			if l := lastLines(ev.Log, 1); len(l) > 0 {
				a.last = l[0]
			}
		}
	case engine.ActionDone:
		delete(p.running, id)
		fmt.Fprintf(p.w, "[%s] done   %s (%.2fs)\n", safeLine(ev.Image), safeLine(ev.Action), ev.Duration.Seconds())
	case engine.ActionFailed, engine.ImageSkipped:
		delete(p.running, id)
		printFailure(p.w, ev)
	case engine.ImageDone:
		fmt.Fprintf(p.w, "[%s] image  %s\n", safeLine(ev.Image), ev.Digest)
	case engine.ImagePublished:
		fmt.Fprintf(p.w, "[%s] published %s\n", safeLine(ev.Image), ev.Digest)
	case engine.CacheWarning:
		fmt.Fprintf(p.w, "[%s] warning %s: %s\n", safeLine(ev.Image), safeLine(ev.Action), safe(fmt.Sprint(ev.Err)))
	case engine.CheckWarning:
		printCheckWarning(p.w, ev)
	}
	p.redraw()
}

// erase removes the live lines.
func (p *ttyProgress) erase() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// redraw replaces the live lines, one per running action, oldest first.
func (p *ttyProgress) redraw() {
	p.erase()
	width := 100
	if f, ok := p.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			width = w
		}
	}
	live := make([]*liveAction, 0, len(p.running))
	for _, a := range p.running {
		live = append(live, a)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].start.Before(live[j].start) })
	for _, a := range live {
		line := fmt.Sprintf("%5.1fs [%s] %s", time.Since(a.start).Seconds(), safeLine(a.image), safeLine(a.action))
		if a.last != "" {
			line += " | " + safeLine(a.last)
		}
		if len(line) > width-1 {
			// On a character boundary.
			cut := width - 1
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = line[:cut]
		}
		fmt.Fprintln(p.w, line)
	}
	p.drawn = len(live)
}
