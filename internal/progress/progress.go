// Package progress reports how far long jobs have got, in the form that
// suits where the report goes: on a terminal a bar redrawn in place (count,
// rate, ETA); anywhere else (a file, a pipe, CI, docker logs) a log/slog
// line every 15 s with the same figures, and never a carriage return. The
// form is chosen per process (SetMode, re2g's --progress) or per bar.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Mode is how progress is shown.
type Mode int32

const (
	Auto Mode = iota // a bar on a terminal, log lines elsewhere
	Bar              // always a bar
	Log              // always log lines
	Off              // nothing
)

// Modes lists the names ParseMode accepts, in Mode order.
var Modes = []string{"auto", "bar", "log", "off"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(Modes) {
		return Modes[m]
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// ParseMode reads auto, bar, log or off.
func ParseMode(s string) (Mode, error) {
	for i, n := range Modes {
		if s == n {
			return Mode(i), nil
		}
	}
	return Auto, fmt.Errorf("progress mode %q: want auto, bar, log or off", s)
}

// DefaultInterval is the time between log lines.
const DefaultInterval = 15 * time.Second

var mode atomic.Int32

// SetMode sets the process-wide mode of bars made without Options.Mode.
func SetMode(m Mode) { mode.Store(int32(m)) }

// CurrentMode is the process-wide mode (Auto unless SetMode changed it).
func CurrentMode() Mode { return Mode(mode.Load()) }

// Options configure a Reporter; the zero value is standard error in the
// process-wide mode.
type Options struct {
	Writer   io.Writer     // where a bar is drawn, and log lines written when Logger is nil (nil: os.Stderr)
	Mode     Mode          // Auto: the process-wide mode (SetMode)
	Interval time.Duration // between log lines (0: DefaultInterval)
	// Logger receives the log lines (nil: slog.Default() when Writer is
	// os.Stderr, else a text handler on Writer).
	Logger *slog.Logger
	Bytes  bool // the count is bytes: shown as KiB, MiB, ...
}

// Reporter shows the progress of one job. Its methods are safe for
// concurrent use, and do nothing on a nil Reporter.
type Reporter struct {
	mu       sync.Mutex
	desc     string
	detail   string
	unit     string
	total    int64 // -1: unknown
	done     int64
	base     int64 // done before this run (Resume): not in the rate
	start    time.Time
	lastLog  time.Time
	interval time.Duration
	log      *slog.Logger // log mode
	bar      *progressbar.ProgressBar
	bytes    bool
	finished bool
	now      func() time.Time
}

// New reports total items of unit (e.g. "passages"; total -1: unknown) of
// the job desc on standard error.
func New(total int, desc, unit string) *Reporter {
	return NewWith(int64(total), desc, unit, Options{})
}

// NewTo is New writing to w; a nil w shows nothing.
func NewTo(w io.Writer, total int, desc, unit string) *Reporter {
	if w == nil {
		return NewWith(int64(total), desc, unit, Options{Mode: Off})
	}
	return NewWith(int64(total), desc, unit, Options{Writer: w})
}

// NewWith is New with options.
func NewWith(total int64, desc, unit string, o Options) *Reporter {
	if total < 0 {
		total = -1
	}
	w := o.Writer
	if w == nil {
		w = os.Stderr
	}
	m := o.Mode
	if m == Auto {
		m = CurrentMode()
	}
	if m == Auto {
		m = Log
		if IsTerminal(w) {
			m = Bar
		}
	}
	r := &Reporter{desc: desc, unit: unit, total: total, bytes: o.Bytes, interval: o.Interval, now: time.Now}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	r.start = r.now()
	r.lastLog = r.start
	switch m {
	case Bar:
		opts := []progressbar.Option{
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(500 * time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
			progressbar.OptionFullWidth(),
		}
		if o.Bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
		}
		r.bar = progressbar.NewOptions64(total, opts...)
		_ = r.bar.RenderBlank() // starts the bar's clock, so that its rate is right
	case Log:
		r.log = o.Logger
		if r.log == nil {
			if w == os.Stderr {
				r.log = slog.Default()
			} else {
				r.log = slog.New(slog.NewTextHandler(w, nil))
			}
		}
	}
	return r
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add counts n more items done.
func (r *Reporter) Add(n int) error { return r.Add64(int64(n)) }

// Add64 is Add for large counts.
func (r *Reporter) Add64(n int64) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setLocked(r.done + n)
}

// Set says n items are done in all.
func (r *Reporter) Set(n int) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setLocked(int64(n))
}

// Resume says n items were done by an earlier run: they count as done but
// not towards the rate.
func (r *Reporter) Resume(n int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base = int64(n)
	_ = r.setLocked(int64(n))
	r.start = r.now()
}

// Write counts len(p) bytes, so that a Reporter can sit in an io.TeeReader.
func (r *Reporter) Write(p []byte) (int, error) {
	return len(p), r.Add(len(p))
}

// ChangeMax changes the total (-1: unknown).
func (r *Reporter) ChangeMax(total int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = max(int64(total), -1)
	if r.bar != nil {
		r.bar.ChangeMax64(r.total)
	}
}

// Describe sets a detail shown after the job's name (e.g. the last loss).
func (r *Reporter) Describe(detail string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detail = detail
	if r.bar != nil {
		if detail != "" {
			r.bar.Describe(r.desc + " " + detail)
		} else {
			r.bar.Describe(r.desc)
		}
	}
}

// Finish ends the report: a bar is completed, log mode writes a last line
// with the count, the time taken and the rate ("progress stopped" when
// fewer than the total were done). Reaching the total finishes too. Later
// calls do nothing.
func (r *Reporter) Finish() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finishLocked()
}

func (r *Reporter) finishLocked() error {
	if r.finished {
		return nil
	}
	r.finished = true
	if r.bar != nil {
		if r.total < 0 || r.done >= r.total {
			return r.bar.Finish()
		}
		// stopped early: end the line without claiming completion
		return r.bar.Exit()
	}
	if r.log != nil {
		elapsed := r.now().Sub(r.start)
		msg := "progress finished"
		if r.total >= 0 && r.done < r.total {
			msg = "progress stopped"
		}
		r.log.Info(msg, append(r.attrs(), "elapsed", elapsed.Round(time.Millisecond))...)
	}
	return nil
}

// Close is Finish, for io.Closer.
func (r *Reporter) Close() error { return r.Finish() }

func (r *Reporter) setLocked(n int64) error {
	if r.finished {
		return nil
	}
	r.done = n
	if r.bar != nil {
		return r.bar.Set64(n)
	}
	if r.total > 0 && n >= r.total {
		r.finishLocked() // complete, as a bar completes itself
		return nil
	}
	if r.log != nil {
		if now := r.now(); now.Sub(r.lastLog) >= r.interval {
			r.lastLog = now
			attrs := r.attrs()
			if eta, ok := r.eta(now); ok {
				attrs = append(attrs, "eta", eta)
			}
			r.log.Info("progress", attrs...)
		}
	}
	return nil
}

// attrs are the figures of a log line.
func (r *Reporter) attrs() []any {
	a := []any{"task", r.desc}
	if r.detail != "" {
		a = append(a, "detail", r.detail)
	}
	rate := r.rate(r.now())
	if r.bytes {
		a = append(a, "done", formatBytes(float64(r.done)))
		if r.total >= 0 {
			a = append(a, "total", formatBytes(float64(r.total)))
		}
		a = append(a, "rate", formatBytes(rate)+"/s")
	} else {
		a = append(a, "done", r.done)
		if r.total >= 0 {
			a = append(a, "total", r.total)
		}
		a = append(a, "unit", r.unit, "rate", formatRate(rate))
	}
	if r.total > 0 {
		a = append(a, "percent", math.Round(1000*float64(r.done)/float64(r.total))/10)
	}
	return a
}

func (r *Reporter) rate(now time.Time) float64 {
	s := now.Sub(r.start).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(r.done-r.base) / s
}

// eta is the time left at the rate so far, when the total is known.
func (r *Reporter) eta(now time.Time) (time.Duration, bool) {
	rate := r.rate(now)
	if r.total < 0 || rate <= 0 {
		return 0, false
	}
	left := max(0, float64(r.total-r.done)) / rate
	return time.Duration(left * float64(time.Second)).Round(time.Second), true
}

// formatRate writes a rate per second: one decimal below 100, none above.
func formatRate(r float64) string {
	if r < 100 {
		return fmt.Sprintf("%.1f/s", r)
	}
	return fmt.Sprintf("%.0f/s", r)
}

func formatBytes(b float64) string {
	const units = "KMGTPE"
	if b < 1024 {
		return fmt.Sprintf("%.0f B", b)
	}
	i := -1
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", b, units[i])
}
