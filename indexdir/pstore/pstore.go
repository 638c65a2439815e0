// Package pstore is an index's passage store: every passage of the corpus
// (id, page, paragraph range, title, text, and the corpus line it came from)
// on disk, looked up in constant time by row (corpus order, which is also
// how FAISS ids map to passages) or by passage id, from files mapped into
// memory read-only. Nothing is loaded at open: a lookup touches a few pages.
//
// Layout of a store directory:
//
//	passages.dat  "RE2GPSD1", then the records, one per passage, in row order
//	passages.off  "RE2GPSO1", count (uint64), then count+1 uint64 offsets of
//	              the records in passages.dat (the last one its size)
//	passages.ids  "RE2GPSH1", count, slots (a power of two), the hash (1:
//	              xxh64 of the id), then slots uint64 entries of an
//	              open-addressing (linear probing) table of the ids: 0 for
//	              an empty slot, else the id hash's top 24 bits << 40 | row+1
//
// A record is: uvarint line, uvarint len + id, page (a byte: 0 none, 1 the
// title, 2 the page of the id's range, 3 followed by uvarint len + page), range
// (uvarint 0, or first+1, uvarint last, a byte of cut flags), uvarint len +
// title, uvarint len + text. Integers are little-endian.
//
// A store is written once, by a Writer, into a temporary directory that is
// renamed into place when it is complete; repeated ids are found then. Its
// memory is the id table (8 bytes a slot, 1.4 to 2.9 slots a passage); the
// passages stream to disk.
package pstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
)

// The store's files.
const (
	DataFile    = "passages.dat"
	OffsetsFile = "passages.off"
	IDsFile     = "passages.ids"
)

const (
	dataMagic   = "RE2GPSD1"
	offMagic    = "RE2GPSO1"
	idsMagic    = "RE2GPSH1"
	offHeader   = 16
	idsHeader   = 32
	hashXXH64   = 1
	rowBits     = 40
	rowMask     = 1<<rowBits - 1
	maxRows     = rowMask - 1
	maxField    = 64 << 20 // a longer id, page, title or text is damage
	pageNone    = 0
	pageTitle   = 1
	pageOfRange = 2
	pageOwn     = 3
)

var (
	// ErrNotFound reports a passage id the store does not hold.
	ErrNotFound = errors.New("not in the passage store")
	// ErrRange reports a row number outside the store.
	ErrRange = errors.New("row out of range")
	// ErrCorrupt reports a store file that is not as the store wrote it.
	ErrCorrupt = errors.New("damaged passage store")
)

// Passage is one stored passage.
type Passage struct {
	Row   int    // position in the corpus, from 0
	Line  int    // the corpus line it came from (0: not known)
	ID    string // passage id
	Page  string // the page (KILT wikipedia_id) it belongs to; "" when the corpus has none
	Title string
	Text  string
	// Range is the paragraph range of a "page::[a,b]" id (or a cut form,
	// see data.ParsePassageID); nil for other ids.
	Range *data.PassageRange
}

// DataPassage is the passage's id, title and text.
func (p Passage) DataPassage() data.Passage {
	return data.Passage{ID: p.ID, Title: p.Title, Text: p.Text}
}

// DuplicateError reports an id that two rows share.
type DuplicateError struct {
	ID              string
	Row, FirstRow   int
	Line, FirstLine int
}

func (e *DuplicateError) Error() string {
	if e.Line > 0 && e.FirstLine > 0 {
		return fmt.Sprintf("line %d: duplicate passage id %q (first at line %d)", e.Line, e.ID, e.FirstLine)
	}
	return fmt.Sprintf("passage %d: duplicate passage id %q (first passage %d)", e.Row+1, e.ID, e.FirstRow+1)
}

// tableSize is the number of id-table slots for n passages: a power of two
// with a load of at most 0.7.
func tableSize(n int) int {
	need := max(16, (n*10+6)/7+1)
	return 1 << bits.Len(uint(need-1))
}

func slotEntry(h uint64, row int) uint64 { return h>>rowBits<<rowBits | uint64(row+1) }

// Writer writes a new store.
type Writer struct {
	dir, tmp string
	data     *os.File
	off      *os.File
	hashes   *os.File
	dataW    *bufio.Writer
	offW     *bufio.Writer
	hashW    *bufio.Writer
	pos      int64
	n        int
	rec      []byte
	done     bool
}

// Create starts a store that will be dir, which must not exist; the files
// are written into a temporary directory beside it until Close.
func Create(dir string) (*Writer, error) {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("pstore: create %s: it exists", dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("pstore: create %s: %w", dir, err)
	}
	w := &Writer{dir: dir, tmp: tmp}
	fail := func(err error) (*Writer, error) {
		w.Abort()
		return nil, fmt.Errorf("pstore: create %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	for _, f := range []struct {
		name string
		file **os.File
		bw   **bufio.Writer
	}{{DataFile, &w.data, &w.dataW}, {OffsetsFile, &w.off, &w.offW}, {".hashes", &w.hashes, &w.hashW}} {
		if *f.file, err = os.OpenFile(filepath.Join(tmp, f.name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return fail(err)
		}
		*f.bw = bufio.NewWriterSize(*f.file, 1<<20)
	}
	w.dataW.WriteString(dataMagic)
	w.pos = int64(len(dataMagic))
	w.offW.Write(make([]byte, offHeader)) // the header, written at Close
	return w, nil
}

// Count is the number of passages added so far.
func (w *Writer) Count() int { return w.n }

// Add appends a passage as the next row (p.Row and p.Range are ignored:
// the range is parsed from the id).
func (w *Writer) Add(p Passage) error {
	if w.done {
		return fmt.Errorf("pstore: %s: add after close", w.dir)
	}
	if p.ID == "" {
		return fmt.Errorf("pstore: %s: row %d: empty passage id", w.dir, w.n)
	}
	if w.n >= maxRows {
		return fmt.Errorf("pstore: %s: full (%d passages)", w.dir, w.n)
	}
	for _, f := range []string{p.ID, p.Page, p.Title, p.Text} {
		if len(f) > maxField {
			return fmt.Errorf("pstore: %s: passage %q: a field of %d bytes, over the %d limit", w.dir, p.ID, len(f), maxField)
		}
	}
	b := binary.AppendUvarint(w.rec[:0], uint64(max(p.Line, 0)))
	b = appendString(b, p.ID)
	r, hasRange := data.ParsePassageID(p.ID)
	switch {
	case p.Page == "":
		b = append(b, pageNone)
	case p.Page == p.Title:
		b = append(b, pageTitle)
	case hasRange && p.Page == r.Page:
		b = append(b, pageOfRange)
	default:
		b = appendString(append(b, pageOwn), p.Page)
	}
	if hasRange {
		var cuts byte
		if r.CutFirst {
			cuts |= 1
		}
		if r.CutLast {
			cuts |= 2
		}
		b = binary.AppendUvarint(b, uint64(r.First)+1)
		b = binary.AppendUvarint(b, uint64(r.Last))
		b = append(b, cuts)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, p.Title)
	b = appendString(b, p.Text)
	w.rec = b
	var word [8]byte
	binary.LittleEndian.PutUint64(word[:], uint64(w.pos))
	w.offW.Write(word[:])
	binary.LittleEndian.PutUint64(word[:], xxhash.Sum64String(p.ID))
	w.hashW.Write(word[:])
	if _, err := w.dataW.Write(b); err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	w.pos += int64(len(b))
	w.n++
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Abort drops the store being written.
func (w *Writer) Abort() {
	w.done = true
	for _, f := range []*os.File{w.data, w.off, w.hashes} {
		if f != nil {
			f.Close()
		}
	}
	os.RemoveAll(w.tmp)
}

// Close finishes the store: it builds the id table and moves the store
// into place. Two passages with one id are a *DuplicateError (the later
// row's), and no store is left behind; so is any other failure.
func (w *Writer) Close(ctx context.Context) (err error) {
	if w.done {
		return fmt.Errorf("pstore: %s: closed twice", w.dir)
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	var word [8]byte
	binary.LittleEndian.PutUint64(word[:], uint64(w.pos))
	w.offW.Write(word[:])
	for _, bw := range []*bufio.Writer{w.dataW, w.offW, w.hashW} {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("pstore: %s: %w", w.dir, err)
		}
	}
	var h [offHeader]byte
	copy(h[:], offMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(w.n))
	if _, err := w.off.WriteAt(h[:], 0); err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	table, err := w.table(ctx)
	if err != nil {
		return err
	}
	if err := w.writeTable(table); err != nil {
		return err
	}
	table = nil
	for _, f := range []*os.File{w.data, w.off} {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("pstore: %s: %w", w.dir, err)
		}
	}
	w.hashes.Close()
	if err := os.Remove(w.hashes.Name()); err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	for _, f := range []*os.File{w.data, w.off} {
		if err := f.Close(); err != nil {
			return fmt.Errorf("pstore: %s: %w", w.dir, err)
		}
	}
	w.done = true
	if err := atomicfile.Rename(w.tmp, w.dir); err != nil {
		os.RemoveAll(w.tmp)
		return fmt.Errorf("pstore: %w", err)
	}
	return nil
}

// table builds the id table from the hashes Add wrote, comparing the ids of
// two rows only when their hashes agree in the entry's 24 bits.
func (w *Writer) table(ctx context.Context) ([]uint64, error) {
	slots := tableSize(w.n)
	mask := uint64(slots - 1)
	table := make([]uint64, slots)
	if _, err := w.hashes.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	br := bufio.NewReaderSize(w.hashes, 1<<20)
	var word [8]byte
	for row := 0; row < w.n; row++ {
		if row&0xffff == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if _, err := io.ReadFull(br, word[:]); err != nil {
			return nil, fmt.Errorf("pstore: %s: hashes: %w", w.dir, err)
		}
		hash := binary.LittleEndian.Uint64(word[:])
		tag := hash >> rowBits
		for i := hash & mask; ; i = (i + 1) & mask {
			e := table[i]
			if e == 0 {
				table[i] = slotEntry(hash, row)
				break
			}
			if e>>rowBits != tag {
				continue
			}
			other := int(e&rowMask) - 1
			a, err := w.header(other)
			if err != nil {
				return nil, err
			}
			b, err := w.header(row)
			if err != nil {
				return nil, err
			}
			if a.id == b.id {
				return nil, &DuplicateError{ID: b.id, Row: row, FirstRow: other, Line: b.line, FirstLine: a.line}
			}
		}
	}
	return table, nil
}

type recHeader struct {
	line int
	id   string
}

// header reads a written row's line and id.
func (w *Writer) header(row int) (recHeader, error) {
	var word [8]byte
	if _, err := w.off.ReadAt(word[:], offHeader+8*int64(row)); err != nil {
		return recHeader{}, fmt.Errorf("pstore: %s: offsets: %w", w.dir, err)
	}
	at := int64(binary.LittleEndian.Uint64(word[:]))
	buf := make([]byte, 2*binary.MaxVarintLen64)
	n, err := w.data.ReadAt(buf, at)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return recHeader{}, fmt.Errorf("pstore: %s: row %d: %w", w.dir, row, err)
	}
	buf = buf[:n]
	line, k1 := binary.Uvarint(buf)
	l, k2 := binary.Uvarint(buf[max(k1, 0):])
	if k1 <= 0 || k2 <= 0 || l > maxField {
		return recHeader{}, fmt.Errorf("pstore: %s: row %d: a record it cannot read back", w.dir, row)
	}
	id := make([]byte, l)
	if _, err := w.data.ReadAt(id, at+int64(k1+k2)); err != nil {
		return recHeader{}, fmt.Errorf("pstore: %s: row %d: %w", w.dir, row, err)
	}
	return recHeader{line: int(line), id: string(id)}, nil
}

func (w *Writer) writeTable(table []uint64) error {
	f, err := os.OpenFile(filepath.Join(w.tmp, IDsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var h [idsHeader]byte
	copy(h[:], idsMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(w.n))
	binary.LittleEndian.PutUint64(h[16:], uint64(len(table)))
	binary.LittleEndian.PutUint64(h[24:], hashXXH64)
	bw.Write(h[:])
	var word [8]byte
	for _, e := range table {
		binary.LittleEndian.PutUint64(word[:], e)
		bw.Write(word[:])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pstore: %s: %w", w.dir, err)
	}
	return f.Close()
}

// Store is an open store. Lookups are safe for concurrent use; Close must
// not run concurrently with them.
type Store struct {
	dir   string
	data  []byte // passages.dat, mapped
	off   []byte // passages.off, mapped
	ids   []byte // passages.ids, mapped
	files *os.File
	n     int
	mask  uint64
}

// Open maps a store's files into memory, read-only, after checking that
// their headers and sizes agree; it reads nothing else.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	maps := []struct {
		name string
		dst  *[]byte
	}{{DataFile, &s.data}, {OffsetsFile, &s.off}, {IDsFile, &s.ids}}
	for _, m := range maps {
		b, err := mapFile(filepath.Join(dir, m.name))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("pstore: open %s: %w", dir, err)
		}
		*m.dst = b
	}
	if err := s.check(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 8 {
		return nil, fmt.Errorf("%s: %w: %d bytes", path, ErrCorrupt, st.Size())
	}
	if int64(int(st.Size())) != st.Size() {
		return nil, fmt.Errorf("%s: %d bytes: too large to map", path, st.Size())
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return b, nil
}

func (s *Store) corrupt(file, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", filepath.Join(s.dir, file), ErrCorrupt, fmt.Sprintf(format, args...))
}

func (s *Store) check() error {
	if string(s.data[:8]) != dataMagic {
		return s.corrupt(DataFile, "not a passage store's data file")
	}
	if len(s.off) < offHeader || string(s.off[:8]) != offMagic {
		return s.corrupt(OffsetsFile, "not a passage store's offsets file")
	}
	n := binary.LittleEndian.Uint64(s.off[8:])
	if n > maxRows || uint64(len(s.off)) != offHeader+8*(n+1) {
		return s.corrupt(OffsetsFile, "%d bytes for %d passages", len(s.off), n)
	}
	s.n = int(n)
	if first, last := s.offset(0), s.offset(s.n); first != int64(len(dataMagic)) || last != int64(len(s.data)) {
		return s.corrupt(DataFile, "%d bytes, %s has the records from byte %d to %d", len(s.data), filepath.Join(s.dir, OffsetsFile), first, last)
	}
	if len(s.ids) < idsHeader || string(s.ids[:8]) != idsMagic {
		return s.corrupt(IDsFile, "not a passage store's id table")
	}
	count, slots, hash := binary.LittleEndian.Uint64(s.ids[8:]), binary.LittleEndian.Uint64(s.ids[16:]), binary.LittleEndian.Uint64(s.ids[24:])
	if count != n || hash != hashXXH64 || slots < n+1 || slots&(slots-1) != 0 || uint64(len(s.ids)) != idsHeader+8*slots {
		return s.corrupt(IDsFile, "%d passages, %d slots, hash %d in %d bytes; the offsets file has %d passages", count, slots, hash, len(s.ids), n)
	}
	s.mask = slots - 1
	return nil
}

// Close unmaps the files.
func (s *Store) Close() error {
	var errs []error
	for _, b := range []*[]byte{&s.data, &s.off, &s.ids} {
		if *b != nil {
			errs = append(errs, unix.Munmap(*b))
			*b = nil
		}
	}
	s.n = 0
	return errors.Join(errs...)
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Len is the number of passages.
func (s *Store) Len() int { return s.n }

func (s *Store) offset(row int) int64 {
	return int64(binary.LittleEndian.Uint64(s.off[offHeader+8*row:]))
}

// record is row's bytes in the data file.
func (s *Store) record(row int) ([]byte, error) {
	if row < 0 || row >= s.n {
		return nil, fmt.Errorf("pstore %s: %w: row %d of %d passages", s.dir, ErrRange, row, s.n)
	}
	lo, hi := s.offset(row), s.offset(row+1)
	if lo < int64(len(dataMagic)) || hi < lo || hi > int64(len(s.data)) {
		return nil, s.corrupt(OffsetsFile, "row %d at bytes %d to %d of %d", row, lo, hi, len(s.data))
	}
	return s.data[lo:hi], nil
}

// Row returns the passage at row (0 ≤ row < Len).
func (s *Store) Row(row int) (Passage, error) {
	b, err := s.record(row)
	if err != nil {
		return Passage{}, err
	}
	p, err := decode(b)
	if err != nil {
		return Passage{}, s.corrupt(DataFile, "row %d: %v", row, err)
	}
	p.Row = row
	return p, nil
}

// ID is the passage id of row.
func (s *Store) ID(row int) (string, error) {
	b, err := s.record(row)
	if err != nil {
		return "", err
	}
	id, err := decodeID(b)
	if err != nil {
		return "", s.corrupt(DataFile, "row %d: %v", row, err)
	}
	return string(id), nil
}

// Lookup is the row of the passage id; an id the store lacks is an error
// wrapping ErrNotFound.
func (s *Store) Lookup(id string) (int, error) {
	if s.ids == nil {
		return 0, fmt.Errorf("pstore %s: closed", s.dir)
	}
	h := xxhash.Sum64String(id)
	tag := h >> rowBits
	for i, probes := h&s.mask, uint64(0); probes <= s.mask; i, probes = (i+1)&s.mask, probes+1 {
		e := binary.LittleEndian.Uint64(s.ids[idsHeader+8*i:])
		if e == 0 {
			break
		}
		if e>>rowBits != tag {
			continue
		}
		row := int(e&rowMask) - 1
		b, err := s.record(row)
		if err != nil {
			return 0, fmt.Errorf("%s: %w: slot %d: %v", filepath.Join(s.dir, IDsFile), ErrCorrupt, i, err)
		}
		got, err := decodeID(b)
		if err != nil {
			return 0, s.corrupt(DataFile, "row %d: %v", row, err)
		}
		if string(got) == id {
			return row, nil
		}
	}
	return 0, fmt.Errorf("passage %q: %w %s", id, ErrNotFound, s.dir)
}

// Get returns the passage with the given id; see Lookup.
func (s *Store) Get(id string) (Passage, error) {
	row, err := s.Lookup(id)
	if err != nil {
		return Passage{}, err
	}
	return s.Row(row)
}

// Scan calls fn with the passages of rows from to to-1 in order, reading
// the data file sequentially (not through the mapping, so that a pass over
// the whole store does not keep its pages resident in this process).
func (s *Store) Scan(ctx context.Context, from, to int, fn func(Passage) error) error {
	if from < 0 || to > s.n || from > to {
		return fmt.Errorf("pstore %s: %w: rows %d to %d of %d passages", s.dir, ErrRange, from, to, s.n)
	}
	if from == to {
		return nil
	}
	f, err := os.Open(filepath.Join(s.dir, DataFile))
	if err != nil {
		return fmt.Errorf("pstore: %w", err)
	}
	defer f.Close()
	lo, hi := s.offset(from), s.offset(to)
	if lo < int64(len(dataMagic)) || hi < lo || hi > int64(len(s.data)) {
		return s.corrupt(OffsetsFile, "rows %d to %d at bytes %d to %d of %d", from, to, lo, hi, len(s.data))
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, lo, hi-lo), 1<<20)
	var buf []byte
	next := lo
	for row := from; row < to; row++ {
		if row&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		end := s.offset(row + 1)
		if end < next || end > hi {
			return s.corrupt(OffsetsFile, "row %d ends at byte %d, after %d", row, end, next)
		}
		if int64(cap(buf)) < end-next {
			buf = make([]byte, end-next)
		}
		buf = buf[:end-next]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("pstore: %s: row %d: %w", filepath.Join(s.dir, DataFile), row, err)
		}
		next = end
		p, err := decode(buf)
		if err != nil {
			return s.corrupt(DataFile, "row %d: %v", row, err)
		}
		p.Row = row
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// decoder reads a record's fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("a number cut short")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.b)) || l > maxField {
		d.err = fmt.Errorf("a field of %d bytes, %d left in the record", l, len(d.b))
		return nil
	}
	out := d.b[:l]
	d.b = d.b[l:]
	return out
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("the record is cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func decodeID(b []byte) ([]byte, error) {
	d := decoder{b: b}
	d.uvarint()
	id := d.bytes()
	if d.err == nil && len(id) == 0 {
		d.err = errors.New("empty id")
	}
	return id, d.err
}

func decode(b []byte) (Passage, error) {
	d := decoder{b: b}
	var p Passage
	p.Line = int(d.uvarint())
	id := d.bytes()
	kind := d.byte()
	var page []byte
	if kind == pageOwn {
		page = d.bytes()
	}
	var r *data.PassageRange
	if first := d.uvarint(); first > 0 {
		last := d.uvarint()
		cuts := d.byte()
		if first-1 > last || last >= 1<<29 {
			d.err = fmt.Errorf("paragraph range %d to %d", first-1, last)
		}
		r = &data.PassageRange{First: int(first - 1), Last: int(last), CutFirst: cuts&1 != 0, CutLast: cuts&2 != 0}
	}
	title := d.bytes()
	text := d.bytes()
	if d.err != nil {
		return Passage{}, d.err
	}
	if len(id) == 0 || len(d.b) != 0 || kind > pageOwn {
		return Passage{}, fmt.Errorf("id %q, page kind %d, %d bytes left over", id, kind, len(d.b))
	}
	p.ID, p.Title, p.Text = string(id), string(title), string(text)
	if r != nil {
		i := strings.LastIndex(p.ID, "::")
		if i <= 0 {
			return Passage{}, fmt.Errorf("a paragraph range for id %q", p.ID)
		}
		r.Page = p.ID[:i]
		p.Range = r
	}
	switch kind {
	case pageTitle:
		p.Page = p.Title
	case pageOfRange:
		if r == nil {
			return Passage{}, fmt.Errorf("the page of a range, for id %q without one", p.ID)
		}
		p.Page = r.Page
	case pageOwn:
		p.Page = string(page)
	}
	return p, nil
}
