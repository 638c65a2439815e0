package dense

// Precomputed passage vectors, as users bring them from another machine:
//
//   - a NumPy .npy file (format 1.0, 2.0 or 3.0; a 2-D C-order array of
//     little-endian float32 '<f4', float16 '<f2' or float64 '<f8', as
//     numpy.save writes it) with an ids file: the passage id of each row,
//     one a line, in row order;
//   - JSON lines {"id": "...", "vector": [...]} (what `re2g encode` writes),
//     plain or gzipped, the ids inline.
//
// Every vector must be finite; every JSON line must have the same dimension.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// VectorFile reads a file of precomputed passage vectors row by row.
type VectorFile struct {
	path, idsPath string
	dim, rows     int // rows: -1 until the end of JSON lines
	row           int // rows read or skipped so far

	f   *os.File
	gz  *gzip.Reader
	r   *bufio.Reader
	ids *bufio.Reader // .npy: the ids file
	idf *os.File

	// .npy
	npy   bool
	width int // bytes a value: 2, 4 or 8
	buf   []byte
	// JSON lines: the first line, read by OpenVectorFile to learn the
	// dimension, and the line number
	pending *vectorLine
	line    int
}

type vectorLine struct {
	ID     json.RawMessage `json:"id"`
	Vector []float32       `json:"vector"`
}

// OpenVectorFile opens a vectors file: .npy with idsPath, its ids file, or
// JSON lines (.jsonl, .jsonl.gz, .json) with the ids inline (idsPath must
// be empty).
func OpenVectorFile(path, idsPath string) (_ *VectorFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vectors: %w", err)
	}
	v := &VectorFile{path: path, idsPath: idsPath, f: f, rows: -1}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	v.r = bufio.NewReaderSize(f, 1<<20)
	head, _ := v.r.Peek(len(npyMagic))
	switch {
	case string(head) == npyMagic:
		if idsPath == "" {
			return nil, fmt.Errorf("vectors %s: a .npy file needs its ids file (the passage id of each row, one a line)", path)
		}
		if err := v.readNPYHeader(); err != nil {
			return nil, fmt.Errorf("vectors %s: %w", path, err)
		}
		if v.idf, err = os.Open(idsPath); err != nil {
			return nil, fmt.Errorf("vectors %s: ids: %w", path, err)
		}
		v.ids = bufio.NewReaderSize(v.idf, 1<<16)
		return v, nil
	case strings.HasSuffix(path, ".npy"):
		return nil, fmt.Errorf("vectors %s: not a NumPy .npy file (no \\x93NUMPY magic)", path)
	}
	if idsPath != "" {
		return nil, fmt.Errorf("vectors %s: JSON lines carry their ids: an ids file (%s) is for .npy vectors", path, idsPath)
	}
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		if v.gz, err = gzip.NewReader(v.r); err != nil {
			return nil, fmt.Errorf("vectors %s: %w", path, err)
		}
		v.r = bufio.NewReaderSize(v.gz, 1<<20)
	}
	first, err := v.readLine()
	if err == io.EOF {
		return nil, fmt.Errorf("vectors %s: no vectors", path)
	}
	if err != nil {
		return nil, err
	}
	v.dim, v.pending = len(first.Vector), first
	if v.dim == 0 {
		return nil, fmt.Errorf("vectors %s: line %d: an empty vector", path, v.line)
	}
	return v, nil
}

// readNPYHeader reads and checks the .npy header: a 2-D C-order array of
// little-endian floats.
func (v *VectorFile) readNPYHeader() error {
	pre := make([]byte, len(npyMagic)+2)
	if _, err := io.ReadFull(v.r, pre); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var hlen, lenBytes int
	switch major := pre[len(npyMagic)]; major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(v.r, b[:]); err != nil {
			return fmt.Errorf("header: %w", err)
		}
		hlen, lenBytes = int(binary.LittleEndian.Uint16(b[:])), 2
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(v.r, b[:]); err != nil {
			return fmt.Errorf("header: %w", err)
		}
		hlen, lenBytes = int(binary.LittleEndian.Uint32(b[:])), 4
	default:
		return fmt.Errorf("NumPy format version %d.%d (want 1.0, 2.0 or 3.0)", major, pre[len(npyMagic)+1])
	}
	if hlen > 1<<20 {
		return fmt.Errorf("header of %d bytes", hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(v.r, h); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	descr, fortran, shape, err := parseNPYHeader(string(h))
	if err != nil {
		return fmt.Errorf("header %q: %w", strings.TrimSpace(string(h)), err)
	}
	switch descr {
	case "<f4":
		v.width = 4
	case "<f2":
		v.width = 2
	case "<f8":
		v.width = 8
	default:
		return fmt.Errorf("dtype %q: want little-endian floats ('<f4', '<f2' or '<f8')", descr)
	}
	if fortran {
		return errors.New("a Fortran-order array: save it in C order (numpy.ascontiguousarray)")
	}
	if len(shape) != 2 || shape[0] < 1 || shape[1] < 1 {
		return fmt.Errorf("shape %v: want (passages, dimension), both positive", shape)
	}
	v.rows, v.dim = shape[0], shape[1]
	v.npy = true
	v.buf = make([]byte, v.dim*v.width)
	if st, err := v.f.Stat(); err == nil {
		if want := int64(len(pre)+lenBytes+hlen) + int64(v.rows)*int64(len(v.buf)); st.Size() != want {
			return fmt.Errorf("%d bytes, want %d for %d×%d %s", st.Size(), want, v.rows, v.dim, descr)
		}
	}
	return nil
}

// parseNPYHeader reads the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 768), }.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	value := func(key string) (string, bool) {
		i := strings.Index(h, "'"+key+"'")
		if i < 0 {
			return "", false
		}
		rest := strings.TrimSpace(h[i+len(key)+2:])
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		return strings.TrimSpace(rest[1:]), true
	}
	d, ok := value("descr")
	if !ok || len(d) < 2 || d[0] != '\'' {
		return "", false, nil, errors.New("no 'descr'")
	}
	end := strings.IndexByte(d[1:], '\'')
	if end < 0 {
		return "", false, nil, errors.New("unterminated 'descr'")
	}
	descr = d[1 : 1+end]
	fo, ok := value("fortran_order")
	switch {
	case ok && strings.HasPrefix(fo, "False"):
	case ok && strings.HasPrefix(fo, "True"):
		fortran = true
	default:
		return "", false, nil, errors.New("no 'fortran_order'")
	}
	s, ok := value("shape")
	if !ok || !strings.HasPrefix(s, "(") || !strings.Contains(s, ")") {
		return "", false, nil, errors.New("no 'shape'")
	}
	for _, f := range strings.Split(s[1:strings.IndexByte(s, ')')], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
		if err != nil {
			return "", false, nil, fmt.Errorf("shape: %q", f)
		}
		shape = append(shape, n)
	}
	return descr, fortran, shape, nil
}

// NPYHeader is the header of a .npy file (format 1.0) holding an n×d
// float32 array in C order; the n·d little-endian float32 values follow it.
func NPYHeader(n, d int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, d)
	// magic, version, length, dict, spaces and '\n' to a multiple of 64
	total := len(npyMagic) + 4 + len(dict) + 1
	pad := (64 - total%64) % 64
	b := make([]byte, 0, total+pad)
	b = append(b, npyMagic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)+pad+1))
	b = append(b, dict...)
	b = append(b, bytes.Repeat([]byte{' '}, pad)...)
	return append(b, '\n')
}

// Path is the vectors file.
func (v *VectorFile) Path() string { return v.path }

// Dim is the vectors' dimension.
func (v *VectorFile) Dim() int { return v.dim }

// Rows is the number of vectors, or -1 for JSON lines, whose count is known
// only at the end.
func (v *VectorFile) Rows() int { return v.rows }

// Next reads the next vector into dst (Dim values) and returns its passage
// id; io.EOF after the last. A vector with a NaN or an infinity, or a JSON
// line of another dimension, is an error naming the row.
func (v *VectorFile) Next(dst []float32) (string, error) {
	if len(dst) != v.dim {
		return "", fmt.Errorf("vectors %s: Next with %d values for dimension %d", v.path, len(dst), v.dim)
	}
	var id string
	if v.npy {
		var err error
		if id, err = v.nextID(); err != nil {
			return "", err
		}
		if id == "" {
			if v.row < v.rows {
				return "", fmt.Errorf("vectors %s: the ids file %s has %d lines for %d rows", v.path, v.idsPath, v.row, v.rows)
			}
			return "", io.EOF
		}
		if v.row >= v.rows {
			return "", fmt.Errorf("vectors %s: the ids file %s has more lines than the %d rows", v.path, v.idsPath, v.rows)
		}
		if _, err := io.ReadFull(v.r, v.buf); err != nil {
			return "", fmt.Errorf("vectors %s: row %d: %w", v.path, v.row, err)
		}
		for j := range dst {
			switch v.width {
			case 4:
				dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(v.buf[4*j:]))
			case 2:
				dst[j] = f16ToF32(binary.LittleEndian.Uint16(v.buf[2*j:]))
			default:
				dst[j] = float32(math.Float64frombits(binary.LittleEndian.Uint64(v.buf[8*j:])))
			}
		}
	} else {
		l := v.pending
		v.pending = nil
		if l == nil {
			var err error
			if l, err = v.readLine(); err != nil {
				return "", err
			}
		}
		if len(l.Vector) != v.dim {
			return "", fmt.Errorf("vectors %s: line %d: dimension %d, the first line's %d", v.path, v.line, len(l.Vector), v.dim)
		}
		var err error
		if id, err = lineID(l.ID); err != nil {
			return "", fmt.Errorf("vectors %s: line %d: %w", v.path, v.line, err)
		}
		copy(dst, l.Vector)
	}
	for j, x := range dst {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return "", fmt.Errorf("vectors %s: row %d (passage %s): %v at dimension %d", v.path, v.row, id, x, j)
		}
	}
	v.row++
	return id, nil
}

// Skip passes over n vectors (a resumed build's stored chunks), reading
// their ids.
func (v *VectorFile) Skip(n int) error {
	if !v.npy {
		buf := make([]float32, v.dim)
		for range n {
			if _, err := v.Next(buf); err != nil {
				return err
			}
		}
		return nil
	}
	for range n {
		id, err := v.nextID()
		if err != nil {
			return err
		}
		if id == "" || v.row >= v.rows {
			return fmt.Errorf("vectors %s: skipping %d rows: only %d", v.path, n, v.row)
		}
		if _, err := v.r.Discard(len(v.buf)); err != nil {
			return fmt.Errorf("vectors %s: row %d: %w", v.path, v.row, err)
		}
		v.row++
	}
	return nil
}

// ScanIDs calls fn with each passage id of a .npy file's ids file, from
// the first, reading no vectors (and nothing for JSON lines, whose ids come
// with the vectors); the ids file must have a line for each row.
func (v *VectorFile) ScanIDs(ctx context.Context, fn func(row int, id string) error) error {
	if !v.npy {
		return nil
	}
	f, err := os.Open(v.idsPath)
	if err != nil {
		return fmt.Errorf("vectors %s: ids: %w", v.path, err)
	}
	defer f.Close()
	ids := &VectorFile{path: v.path, idsPath: v.idsPath, ids: bufio.NewReaderSize(f, 1<<20)}
	for ; ; ids.row++ {
		if ids.row%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		id, err := ids.nextID()
		if err != nil {
			return err
		}
		if id == "" {
			break
		}
		if err := fn(ids.row, id); err != nil {
			return err
		}
	}
	if ids.row != v.rows {
		return fmt.Errorf("vectors %s: the ids file %s has %d lines for %d rows", v.path, v.idsPath, ids.row, v.rows)
	}
	return nil
}

// Row is the number of vectors read or skipped so far.
func (v *VectorFile) Row() int { return v.row }

// nextID reads the next line of the ids file ("" at its end); a blank line
// or one with white space in it is an error.
func (v *VectorFile) nextID() (string, error) {
	s, err := v.ids.ReadString('\n')
	if err == io.EOF && s == "" {
		return "", nil
	}
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("vectors %s: ids file %s: %w", v.path, v.idsPath, err)
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	if s == "" || strings.ContainsAny(s, " \t") {
		return "", fmt.Errorf("vectors %s: ids file %s: line %d: passage id %q is empty or contains white space", v.path, v.idsPath, v.row+1, s)
	}
	return s, nil
}

// readLine reads the next non-blank JSON line.
func (v *VectorFile) readLine() (*vectorLine, error) {
	for {
		b, err := v.r.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("vectors %s: %w", v.path, err)
		}
		v.line++
		if v.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var l vectorLine
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("vectors %s: line %d: %w", v.path, v.line, err)
		}
		if l.ID == nil || l.Vector == nil {
			return nil, fmt.Errorf(`vectors %s: line %d: want {"id": ..., "vector": [...]}`, v.path, v.line)
		}
		return &l, nil
	}
}

// lineID is a JSON line's id: a string, or a number as written.
func lineID(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return "", errors.New("empty id")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("id %s: want a string or a number", raw)
}

// Close closes the files.
func (v *VectorFile) Close() error {
	var errs []error
	if v.gz != nil {
		errs = append(errs, v.gz.Close())
	}
	if v.idf != nil {
		errs = append(errs, v.idf.Close())
	}
	if v.f != nil {
		errs = append(errs, v.f.Close())
	}
	return errors.Join(errs...)
}
