package main

import (
	"bytes"
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
	// every is how often the build should report its progress.
	every() time.Duration
	close()
}

// progressConfig says how to render a build's events.
type progressConfig struct {
	mode string // --progress: auto, tty or plain
	json bool   // --json: events as JSON lines on stdout
	// platforms: text lines name each image's platform too (the images
	// of a multi-platform build have the same names).
	platforms bool
	// logCmd is the command that shows a step's log ("sxmake log" and
	// the flags that find the cache), named after a failure; "" for none.
	logCmd string
}

// newProgress picks the renderer: JSON lines on stdout with --json, live
// lines on a terminal, plain lines otherwise.
func newProgress(cfg progressConfig, stdout, stderr io.Writer) (progress, error) {
	if cfg.json {
		return &jsonProgress{enc: json.NewEncoder(stdout)}, nil
	}
	text := textLines{w: stderr, cfg: cfg}
	switch cfg.mode {
	case "plain":
		return &plainProgress{text: text}, nil
	case "tty":
		return newTTYProgress(text), nil
	case "auto", "":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return newTTYProgress(text), nil
		}
		return &plainProgress{text: text}, nil
	}
	return nil, usagef("unknown --progress %q (want auto, tty or plain)", cfg.mode)
}

// textLines prints the lines plain and terminal output share.
type textLines struct {
	w   io.Writer
	cfg progressConfig
}

// tag is the image an event is about, as lines name it. Like every
// text a line holds that sxmake did not write (names, Containerfile text,
// errors, step output), it is made safe for a terminal (terminal.go).
func (t textLines) tag(ev engine.Event) string {
	if t.cfg.platforms && ev.Platform != "" {
		return safeLine(ev.Image + " " + ev.Platform)
	}
	return safeLine(ev.Image)
}

// line prints the line of an event that ends an action or an image, and
// reports whether there was one.
func (t textLines) line(ev engine.Event) bool {
	switch ev.Kind {
	case engine.ActionDone:
		fmt.Fprintf(t.w, "[%s] done   %s (%.2fs)\n", t.tag(ev), safeLine(ev.Action), ev.Duration.Seconds())
	case engine.ActionFailed, engine.ImageSkipped:
		t.failure(ev)
	case engine.ImageDone:
		fmt.Fprintf(t.w, "[%s] image  %s\n", t.tag(ev), ev.Digest)
	case engine.ImagePublished:
		fmt.Fprintf(t.w, "[%s] published %s\n", t.tag(ev), ev.Digest)
	case engine.CacheWarning:
		fmt.Fprintf(t.w, "[%s] warning %s: %s\n", t.tag(ev), safeLine(ev.Action), safe(fmt.Sprint(ev.Err)))
	case engine.CheckWarning: // a Dockerfile check's finding that does not fail the build
		fmt.Fprintf(t.w, "[%s] warning %s\n", t.tag(ev), safe(fmt.Sprint(ev.Finding)))
	default:
		return false
	}
	return true
}

// failure prints a failed action with the tail of its log and the
// command that shows the whole log.
func (t textLines) failure(ev engine.Event) {
	tag := t.tag(ev)
	if ev.Kind == engine.ImageSkipped {
		fmt.Fprintf(t.w, "[%s] skipped: %s\n", tag, safe(fmt.Sprint(ev.Err)))
		return
	}
	fmt.Fprintf(t.w, "[%s] FAILED %s: %s\n", tag, safeLine(ev.Action), safe(fmt.Sprint(ev.Err)))
	for _, l := range lastLines(ev.Log, 20) {
		fmt.Fprintf(t.w, "[%s] | %s\n", tag, safeLine(l))
	}
	if t.cfg.logCmd != "" && ev.Step > 0 {
		cmd := t.cfg.logCmd
		if t.cfg.platforms {
			cmd += " --platform " + ev.Platform
		}
		fmt.Fprintf(t.w, "[%s] the whole log: %s %s %d\n", tag, cmd, shellQuote(safeLine(ev.Image)), ev.Step)
	}
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

// status is the line saying how far the build is: actions done out of
// all, time elapsed and the time left as estimated from earlier builds.
func status(done int, p engine.Progress, elapsed, left time.Duration) string {
	s := fmt.Sprintf("%d/%d actions done, %d running, %s elapsed", done, p.Total, p.Running, shortDuration(elapsed))
	if p.Left > 0 {
		s += ", about " + shortDuration(left) + " left"
	}
	if p.Unknown > 0 {
		s += fmt.Sprintf(" (and %d actions never timed)", p.Unknown)
	}
	return s
}

// shortDuration prints d to the second (to the tenth under a minute).
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// plainProgress prints one line per action event, for logs and pipes, and
// how far the build is every half minute.
type plainProgress struct {
	mu       sync.Mutex
	text     textLines
	running  running
	emulated emulationNotice
}

func (p *plainProgress) close() {}

func (p *plainProgress) every() time.Duration { return 30 * time.Second }

func (p *plainProgress) event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running.observe(ev)
	p.emulated.print(p.text.w, ev)
	if p.text.line(ev) {
		return
	}
	w := p.text.w
	switch ev.Kind {
	case engine.ActionStarted:
		fmt.Fprintf(w, "[%s] run    %s\n", p.text.tag(ev), safeLine(ev.Action))
	case engine.ActionCached:
		fmt.Fprintf(w, "[%s] cached %s\n", p.text.tag(ev), safeLine(ev.Action))
	case engine.BuildProgress:
		pr := ev.Progress
		if pr.Elapsed < time.Second && pr.Left == 0 {
			return // the start of a build with nothing to tell
		}
		fmt.Fprintf(w, "[%s] %s\n", strings.TrimSpace("build "+ev.Platform), status(pr.Done, pr, pr.Elapsed, pr.Left))
		if pr.Elapsed >= time.Second {
			for _, a := range p.running.sorted(ev.Platform) {
				fmt.Fprintf(w, "[%s] running %s %s%s\n", p.text.tag(a.ev), shortDuration(ev.Time.Sub(a.ev.Time)), safeLine(a.ev.Action), a.lastLine())
			}
		}
	}
}

// running tracks the actions running now, from the events, with the last
// line each printed.
type running map[string]*liveAction

// liveAction is a running action: its ActionStarted event and the last
// line of its output.
type liveAction struct {
	ev   engine.Event
	last string
}

func actionID(ev engine.Event) string { return ev.Image + "\x00" + ev.Platform + "\x00" + ev.Action }

// observe updates r with ev.
func (r *running) observe(ev engine.Event) {
	if *r == nil {
		*r = running{}
	}
	switch ev.Kind {
	case engine.ActionStarted:
		(*r)[actionID(ev)] = &liveAction{ev: ev}
	case engine.ActionLog:
		if a := (*r)[actionID(ev)]; a != nil {
			if l := lastLine(ev.Log); l != "" {
				a.last = l
			}
		}
	case engine.ActionDone, engine.ActionFailed:
		delete(*r, actionID(ev))
	}
}

// sorted returns the running actions of the platform's build (all, if
// platform is ""), oldest first.
func (r running) sorted(platform string) []*liveAction {
	out := make([]*liveAction, 0, len(r))
	for _, a := range r {
		if platform == "" || a.ev.Platform == platform {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ev.Time.Before(out[j].ev.Time) })
	return out
}

// lastLine is " | " and the last line the action printed, made safe, or "".
func (a *liveAction) lastLine() string {
	if a.last == "" {
		return ""
	}
	return " | " + safeLine(a.last)
}

// lastLine returns the last non-empty line of text.
func lastLine(text []byte) string {
	text = bytes.TrimRight(text, "\r\n")
	return string(text[bytes.LastIndexByte(text, '\n')+1:])
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
	mu      sync.Mutex
	enc     *json.Encoder
	running running
}

// jsonEvent is the wire form of an event.
type jsonEvent struct {
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`
	Image    string            `json:"image,omitempty"`
	Platform string            `json:"platform,omitempty"`
	Action   string            `json:"action,omitempty"`
	Step     int               `json:"step,omitempty"`
	Log      string            `json:"log,omitempty"`
	Seconds  float64           `json:"seconds,omitempty"`
	Process  float64           `json:"process_seconds,omitempty"`
	Digest   string            `json:"digest,omitempty"`
	Error    string            `json:"error,omitempty"`
	Explain  []string          `json:"explain,omitempty"`
	Emulator string            `json:"emulator,omitempty"`
	Progress *jsonProgressInfo `json:"progress,omitempty"`
	*findingJSON
}

// jsonProgressInfo is the wire form of engine.Progress.
type jsonProgressInfo struct {
	Done           int     `json:"done"`
	Total          int     `json:"total"`
	Running        int     `json:"running"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	LeftSeconds    float64 `json:"left_seconds"`
	Unknown        int     `json:"unknown"`
	// The actions running: how long they have been, and the last line
	// of their output.
	Actions []jsonRunning `json:"running_actions"`
}

type jsonRunning struct {
	Image          string  `json:"image"`
	Platform       string  `json:"platform"`
	Action         string  `json:"action"`
	Step           int     `json:"step"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	LastLine       string  `json:"last_line,omitempty"`
}

func (p *jsonProgress) close() {}

func (p *jsonProgress) every() time.Duration { return 5 * time.Second }

func (p *jsonProgress) event(ev engine.Event) {
	je := jsonEvent{
		Time: ev.Time.UTC(), Kind: ev.Kind.String(), Image: ev.Image, Platform: ev.Platform, Action: ev.Action, Step: ev.Step,
		Log: string(ev.Log), Seconds: ev.Duration.Seconds(), Process: ev.Process.Seconds(), Explain: ev.Explain,
		Emulator: ev.Emulator,
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running.observe(ev)
	switch ev.Kind {
	case engine.ImageDone, engine.ImagePublished:
		je.Digest = ev.Digest.String()
	case engine.BuildProgress:
		pr := ev.Progress
		je.Progress = &jsonProgressInfo{Done: pr.Done, Total: pr.Total, Running: pr.Running,
			ElapsedSeconds: pr.Elapsed.Seconds(), LeftSeconds: pr.Left.Seconds(), Unknown: pr.Unknown, Actions: []jsonRunning{}}
		for _, a := range p.running.sorted(ev.Platform) {
			je.Progress.Actions = append(je.Progress.Actions, jsonRunning{Image: a.ev.Image, Platform: a.ev.Platform,
				Action: a.ev.Action, Step: a.ev.Step, ElapsedSeconds: ev.Time.Sub(a.ev.Time).Seconds(), LastLine: a.last})
		}
	}
	if ev.Err != nil {
		je.Error = ev.Err.Error()
	}
	if ev.Finding != nil {
		je.findingJSON = newFindingJSON(*ev.Finding)
	}
	p.enc.Encode(je)
}

// ttyProgress keeps one live line per running action (elapsed time and the
// last line of its output) and a status line below the lines of finished
// work. Its few lines of ANSI cursor movement need no library: a progress
// bar library (mpb, progressbar) draws bars, not this list of running
// actions, and would take the terminal over.
type ttyProgress struct {
	mu      sync.Mutex
	text    textLines
	running running
	done    int                      // actions ended
	builds  map[string]buildProgress // the latest BuildProgress of each build, by platform
	start   time.Time
	drawn   int // live lines on screen
	stop    chan struct{}
	stopped chan struct{}

	emulated emulationNotice
}

// buildProgress is a BuildProgress and when it came.
type buildProgress struct {
	engine.Progress
	at time.Time
}

func newTTYProgress(text textLines) *ttyProgress {
	p := &ttyProgress{text: text, builds: map[string]buildProgress{}, start: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
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

func (p *ttyProgress) every() time.Duration { return time.Second }

func (p *ttyProgress) close() {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
}

func (p *ttyProgress) event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
	p.running.observe(ev)
	p.emulated.print(p.text.w, ev)
	switch ev.Kind {
	case engine.ActionCached, engine.ActionDone, engine.ActionFailed:
		p.done++
	case engine.BuildProgress:
		p.builds[ev.Platform] = buildProgress{ev.Progress, ev.Time}
		p.start = ev.Time.Add(-ev.Progress.Elapsed)
	}
	p.text.line(ev)
	p.redraw()
}

// erase removes the live lines.
func (p *ttyProgress) erase() {
	if p.drawn > 0 {
		fmt.Fprintf(p.text.w, "\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// redraw replaces the live lines: one per running action, oldest first,
// then the status line.
func (p *ttyProgress) redraw() {
	p.erase()
	width := 100
	if f, ok := p.text.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			width = w
		}
	}
	var lines []string
	for _, a := range p.running.sorted("") {
		lines = append(lines, fmt.Sprintf("%6s [%s] %s%s", shortDuration(time.Since(a.ev.Time)), p.text.tag(a.ev), safeLine(a.ev.Action), a.lastLine()))
	}
	if len(p.builds) > 0 {
		// The builds of a multi-platform build run at once: the longest
		// says how long is left.
		var pr engine.Progress
		var left time.Duration
		for _, b := range p.builds {
			pr.Total += b.Total
			pr.Unknown += b.Unknown
			pr.Left = max(pr.Left, b.Left)
			left = max(left, b.Left-time.Since(b.at))
		}
		pr.Running = len(p.running)
		lines = append(lines, "["+status(p.done, pr, time.Since(p.start), left)+"]")
	}
	for _, line := range lines {
		if len(line) > width-1 {
			// On a character boundary.
			cut := width - 1
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = line[:cut]
		}
		fmt.Fprintln(p.text.w, line)
	}
	p.drawn = len(lines)
}
