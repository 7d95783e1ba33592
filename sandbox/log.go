package sandbox

import (
	"io"
	"sync"
)

// logBuffer keeps the last limit bytes written to it through its tees.
// Writes through all its tees are serialized, so Spec.Stdout and
// Spec.Stderr may be the same writer even if that is not safe for
// concurrent use.
type logBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func newLogBuffer(limit int) *logBuffer {
	return &logBuffer{limit: limit}
}

// tee returns a writer that writes to w (when not nil) and to the buffer.
// An error of w does not stop the step; w is no longer written to.
func (l *logBuffer) tee(w io.Writer) io.Writer {
	return &teeWriter{log: l, w: w}
}

// keep appends p to the buffer; l.mu must be held. The buffer holds up
// to twice the limit, so that dropping its start, which moves the rest,
// happens once per limit bytes written rather than at every write: a
// step printing in small writes would otherwise cost a move of the whole
// limit per write (a gigabyte of output in 4 KiB writes, 256 GiB).
func (l *logBuffer) keep(p []byte) {
	if len(p) >= l.limit {
		l.buf = append(l.buf[:0], p[len(p)-l.limit:]...)
		return
	}
	if len(l.buf)+len(p) > 2*l.limit {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)+len(p)-l.limit:]...)
	}
	l.buf = append(l.buf, p...)
}

// bytes returns a copy of the last limit bytes written.
func (l *logBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf[max(len(l.buf)-l.limit, 0):]...)
}

type teeWriter struct {
	log *logBuffer
	w   io.Writer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	t.log.keep(p)
	if t.w != nil {
		if _, err := t.w.Write(p); err != nil {
			t.w = nil
		}
	}
	return len(p), nil
}
