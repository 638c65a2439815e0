// Package progress makes the progress bars of long jobs: count, rate and
// ETA on standard error, redrawn at most twice a second so that logs of
// non-interactive runs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// New returns a bar for total items of unit (e.g. "passages"); total -1 is unknown.
func New(total int, desc, unit string) *progressbar.ProgressBar {
	return NewTo(os.Stderr, total, desc, unit)
}

// NewTo is New writing to w.
func NewTo(w io.Writer, total int, desc, unit string) *progressbar.ProgressBar {
	return progressbar.NewOptions(total,
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(500*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionFullWidth(),
	)
}
