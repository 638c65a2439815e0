// Package jsonl streams JSON-lines files through batch functions: each input
// line is decoded (errors name the file and line), batches are processed in
// order, results are written atomically, and package progress shows the
// rate.
package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/bom"
	"github.com/re2g/re2g/internal/progress"
)

// MaxLine is the longest input line accepted.
const MaxLine = 256 << 20

// Map reads inPath line by line (blank lines are skipped, a leading byte
// order mark dropped), decodes each into
// an In, hands batches of up to batch inputs to process, and writes each
// returned Out as one JSON line of outPath, in input order. process must
// return one output per input. The output appears only when all succeeded.
func Map[In, Out any](ctx context.Context, inPath, outPath string, batch int, label string,
	process func(ctx context.Context, in []In) ([]Out, error)) (int, error) {
	f, err := os.Open(inPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	bar := progress.NewWith(size, label, "bytes", progress.Options{Bytes: true})
	defer bar.Finish()
	n := 0
	err = atomicfile.Write(outPath, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		sc := bufio.NewScanner(bom.Reader(f))
		sc.Buffer(make([]byte, 1<<20), MaxLine)
		var ins []In
		first, line := 0, 0
		// bytes of the lines read, and of those whose batch is written (done)
		read, flushed := int64(0), int64(0)
		flush := func() error {
			if len(ins) == 0 {
				return nil
			}
			outs, err := process(ctx, ins)
			if err != nil {
				return fmt.Errorf("%s: lines %d-%d: %w", inPath, first, line, err)
			}
			if len(outs) != len(ins) {
				return fmt.Errorf("%s: lines %d-%d: %d results for %d inputs", inPath, first, line, len(outs), len(ins))
			}
			for _, o := range outs {
				if err := enc.Encode(o); err != nil {
					return err
				}
			}
			n += len(ins)
			ins = ins[:0]
			bar.Add64(read - flushed)
			flushed = read
			return nil
		}
		for sc.Scan() {
			line++
			read += int64(len(sc.Bytes())) + 1 // the newline
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			var v In
			dec := json.NewDecoder(bytes.NewReader(b))
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("%s:%d: %w", inPath, line, err)
			}
			if c, ok := any(&v).(interface{ Check() error }); ok {
				if err := c.Check(); err != nil {
					return fmt.Errorf("%s:%d: %w", inPath, line, err)
				}
			}
			if len(ins) == 0 {
				first = line
			}
			ins = append(ins, v)
			if len(ins) >= batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("%s:%d: line longer than %d MiB", inPath, line+1, MaxLine>>20)
			}
			return fmt.Errorf("%s: %w", inPath, err)
		}
		if err := flush(); err != nil {
			return err
		}
		if size >= 0 {
			bar.Set(int(size)) // all done, line ends and trailing blank lines included
		}
		return bw.Flush()
	})
	return n, err
}
