package progress

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLogReporter(w io.Writer, total int64, interval time.Duration, clk *fakeClock) *Reporter {
	r := NewWith(total, "encode passages", "passages", Options{Writer: w, Mode: Log, Interval: interval})
	r.now = clk.now
	r.start, r.lastLog = clk.now(), clk.now()
	return r
}

func TestLogModeWritesALineEachInterval(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := newLogReporter(&buf, 100, 15*time.Second, clk)
	for i := 0; i < 10; i++ { // 10 updates, 5 s apart: 50 s
		clk.advance(5 * time.Second)
		if err := r.Add(10); err != nil {
			t.Fatal(err)
		}
	}
	r.Finish()
	r.Finish() // idempotent
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("log mode wrote a carriage return: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// lines at 15, 30, 45 s, and the finishing line
	if len(lines) != 4 {
		t.Fatalf("want 3 interval lines and a finishing one, got %d:\n%s", len(lines), out)
	}
	for _, l := range lines[:3] {
		for _, want := range []string{"msg=progress", `task="encode passages"`, "total=100", "unit=passages", "rate=2.0/s", "eta="} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q lacks %q", l, want)
			}
		}
	}
	// at 15 s: 30 of 100 done at 2/s: 35 s left
	if !strings.Contains(lines[0], "done=30 ") || !strings.Contains(lines[0], "eta=35s") || !strings.Contains(lines[0], "percent=30") {
		t.Errorf("first line: want done=30, percent=30, eta=35s: %q", lines[0])
	}
	if !strings.Contains(lines[3], `msg="progress finished"`) || !strings.Contains(lines[3], "done=100") || !strings.Contains(lines[3], "elapsed=50s") {
		t.Errorf("finishing line: %q", lines[3])
	}
	// nothing after Finish
	r.Add(5)
	if buf.String() != out {
		t.Errorf("Add after Finish wrote %q", buf.String()[len(out):])
	}
}

func TestLogModeBytesAndUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := NewWith(-1, "tokenize", "", Options{Writer: &buf, Mode: Log, Bytes: true, Interval: time.Second})
	r.now = clk.now
	r.start, r.lastLog = clk.now(), clk.now()
	clk.advance(2 * time.Second)
	r.Write(make([]byte, 3<<20))
	line := buf.String()
	if !strings.Contains(line, `done="3.0 MiB"`) || !strings.Contains(line, `rate="1.5 MiB/s"`) || strings.Contains(line, "eta=") || strings.Contains(line, "total=") {
		t.Errorf("bytes line with unknown total: %q", line)
	}
}

func TestOffAndNilWriteNothing(t *testing.T) {
	var buf bytes.Buffer
	r := NewWith(10, "x", "items", Options{Writer: &buf, Mode: Off, Interval: time.Nanosecond})
	for i := 0; i < 10; i++ {
		time.Sleep(time.Microsecond)
		r.Add(1)
	}
	r.Finish()
	NewTo(nil, 10, "x", "items").Add(3)
	var nilR *Reporter
	nilR.Add(1)
	nilR.Describe("d")
	nilR.Finish()
	if buf.Len() != 0 {
		t.Fatalf("off mode wrote %q", buf.String())
	}
}

func TestProcessModeAndAuto(t *testing.T) {
	defer SetMode(CurrentMode())
	// a file is not a terminal: auto gives log lines, not a bar
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	SetMode(Auto)
	r := NewWith(3, "x", "items", Options{Writer: f, Interval: time.Nanosecond})
	if r.bar != nil || r.log == nil {
		t.Fatal("auto mode on a file: want log lines")
	}
	if IsTerminal(f) || IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a file and a buffer are not terminals")
	}
	SetMode(Off)
	var buf bytes.Buffer
	r = NewTo(&buf, 3, "x", "items")
	time.Sleep(time.Millisecond)
	r.Add(3)
	r.Finish()
	if buf.Len() != 0 {
		t.Fatalf("process-wide off: wrote %q", buf.String())
	}
	SetMode(Bar)
	r = NewTo(&buf, 3, "x", "items")
	r.Add(3)
	r.Finish()
	if !strings.Contains(buf.String(), "\r") {
		t.Fatalf("bar mode: want a redrawn bar, got %q", buf.String())
	}
}

func TestParseMode(t *testing.T) {
	for i, n := range Modes {
		m, err := ParseMode(n)
		if err != nil || m != Mode(i) || m.String() != n {
			t.Errorf("ParseMode(%q) = %v, %v", n, m, err)
		}
	}
	if _, err := ParseMode("fancy"); err == nil || !strings.Contains(err.Error(), `"fancy"`) {
		t.Errorf("ParseMode(fancy): %v", err)
	}
}

// TestResumeLeavesEarlierWorkOutOfTheRate: steps done before a resume count
// as done, not towards the rate or the ETA.
func TestResumeLeavesEarlierWorkOutOfTheRate(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := newLogReporter(&buf, 100, time.Second, clk)
	r.Resume(50)
	clk.advance(10 * time.Second)
	r.Add(10)
	line := buf.String()
	if !strings.Contains(line, "done=60 ") || !strings.Contains(line, "rate=1.0/s") || !strings.Contains(line, "eta=40s") {
		t.Errorf("after resuming at 50, 10 more in 10 s: %q", line)
	}
}

// TestReachingTheTotalFinishes: a job that reaches its total without
// calling Finish (as a bar completes itself) still gets its last line, once.
func TestReachingTheTotalFinishes(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := newLogReporter(&buf, 8, time.Hour, clk)
	clk.advance(2 * time.Second)
	r.Set(8)
	r.Set(8)
	r.Finish()
	if n := strings.Count(buf.String(), `msg="progress finished"`); n != 1 || !strings.Contains(buf.String(), "elapsed=2s") {
		t.Errorf("want one finishing line after 2 s, got %q", buf.String())
	}
}
