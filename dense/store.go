// Package dense keeps a corpus's passage vectors on disk in shards and
// builds FAISS indexes from them.
//
// Layout of a store directory:
//
//	manifest.json            dim, dtype, and the shards: number, name,
//	                         generation, count, max squared norm, CRC-32C
//	<name>.g<gen>.vec        32-byte header ("RE2GVEC1", dtype, dim, count)
//	                         then count×dim little-endian f32 or f16 values
//	<name>.g<gen>.ids        the passage ids, one per line, in row order
//
// A shard is what one encoder job produces (users encode 21M passages on
// several GPUs). Every shard has a fixed number, and the FAISS id of row r
// of shard s is s<<40 | r (FaissID), so replacing one shard changes no other
// shard's ids and only that shard's index (or the merged one) is rebuilt,
// without re-encoding anything. Shard files are written under a new
// generation and the manifest is replaced atomically afterwards, so a crash
// leaves the previous store intact. One writer at a time.
package dense

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/re2g/re2g/internal/atomicfile"
)

// DType is how vectors are kept on disk.
type DType string

const (
	F32 DType = "f32"
	F16 DType = "f16" // half the disk; ~3 significant digits, fine for DPR scores
)

const (
	manifestName   = "manifest.json"
	manifestFormat = "re2g-dense/1"
	vecMagic       = "RE2GVEC1"
	headerSize     = 32
	rowBits        = 40
	// MaxShardRows is the largest shard (rows addressable in a FaissID).
	MaxShardRows = 1 << rowBits
	// MaxShards is the largest shard number + 1.
	MaxShards = 1 << (63 - rowBits)
)

var (
	// ErrCorrupt reports a store file that does not match its manifest.
	ErrCorrupt = errors.New("dense: corrupt store")
	// ErrUnknownID reports a FAISS id that names no stored passage.
	ErrUnknownID = errors.New("dense: unknown id")
	shardName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// FaissID is the FAISS id of row r of shard number s.
func FaissID(s, r int) int64 { return int64(s)<<rowBits | int64(r) }

// SplitID is FaissID's inverse.
func SplitID(id int64) (shard, row int) { return int(id >> rowBits), int(id & (MaxShardRows - 1)) }

// ShardInfo describes one shard in the manifest.
type ShardInfo struct {
	No        int     `json:"no"`
	Name      string  `json:"name"`
	Gen       int     `json:"gen"`
	Count     int     `json:"count"`
	MaxSqNorm float32 `json:"max_sq_norm"`
	VecCRC    uint32  `json:"vec_crc32c"`
	IDsCRC    uint32  `json:"ids_crc32c"`
}

func (si ShardInfo) vecFile() string { return fmt.Sprintf("%s.g%d.vec", si.Name, si.Gen) }
func (si ShardInfo) idsFile() string { return fmt.Sprintf("%s.g%d.ids", si.Name, si.Gen) }

type manifest struct {
	Format string      `json:"format"`
	Dim    int         `json:"dim"`
	DType  DType       `json:"dtype"`
	Shards []ShardInfo `json:"shards"`
}

// Store is an open store directory.
type Store struct {
	dir string
	man manifest

	mu    sync.Mutex
	ids   map[int][]string // passage ids by shard number, loaded on demand
	byPID map[string]int64 // passage id → FAISS id, built by the first Lookup
}

// Create makes an empty store in dir (created if missing), or opens the
// store already there if it has the same dim and dtype.
func Create(dir string, dim int, dt DType) (*Store, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("dense: create %s: dimension must be positive, got %d", dir, dim)
	}
	if dt != F32 && dt != F16 {
		return nil, fmt.Errorf("dense: create %s: dtype %q (want f32 or f16)", dir, dt)
	}
	if s, err := Open(dir); err == nil {
		if s.man.Dim != dim || s.man.DType != dt {
			return nil, fmt.Errorf("dense: create %s: a store with dim %d dtype %s exists", dir, s.man.Dim, s.man.DType)
		}
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dense: create %s: %w", dir, err)
	}
	s := &Store{dir: dir, man: manifest{Format: manifestFormat, Dim: dim, DType: dt}, ids: map[int][]string{}}
	return s, s.writeManifest()
}

// Open opens an existing store.
func Open(dir string) (*Store, error) {
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dense: open %s: %w", dir, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("dense: open %s: %w: %v", path, ErrCorrupt, err)
	}
	if m.Format != manifestFormat || m.Dim <= 0 || (m.DType != F32 && m.DType != F16) {
		return nil, fmt.Errorf("dense: open %s: %w: format %q dim %d dtype %q", path, ErrCorrupt, m.Format, m.Dim, m.DType)
	}
	return &Store{dir: dir, man: m, ids: map[int][]string{}}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Dim is the vector dimension.
func (s *Store) Dim() int { return s.man.Dim }

// DType is the on-disk vector type.
func (s *Store) DType() DType { return s.man.DType }

// Shards lists the shards by number.
func (s *Store) Shards() []ShardInfo { return slices.Clone(s.man.Shards) }

// Count is the number of stored vectors.
func (s *Store) Count() int {
	n := 0
	for _, si := range s.man.Shards {
		n += si.Count
	}
	return n
}

// MaxSqNorm is the largest squared vector norm in the store.
func (s *Store) MaxSqNorm() float32 {
	var m float32
	for _, si := range s.man.Shards {
		m = max(m, si.MaxSqNorm)
	}
	return m
}

func (s *Store) shard(name string) (int, bool) {
	i := slices.IndexFunc(s.man.Shards, func(si ShardInfo) bool { return si.Name == name })
	return i, i >= 0
}

func (s *Store) writeManifest() error {
	b, err := json.MarshalIndent(s.man, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.dir, manifestName), append(b, '\n'), 0o644)
}

// PutShard stores (or replaces) the shard name: ids[i] is the passage id of
// row i, vecs its Dim floats. A replaced shard keeps its number.
func (s *Store) PutShard(ctx context.Context, name string, ids []string, vecs []float32) (ShardInfo, error) {
	d := s.man.Dim
	if !shardName.MatchString(name) {
		return ShardInfo{}, fmt.Errorf("dense: shard name %q: want letters, digits, '.', '_', '-'", name)
	}
	if len(ids) == 0 || len(ids) >= MaxShardRows {
		return ShardInfo{}, fmt.Errorf("dense: shard %s: %d rows (want 1..%d)", name, len(ids), MaxShardRows-1)
	}
	if len(vecs) != len(ids)*d {
		return ShardInfo{}, fmt.Errorf("dense: shard %s: %d floats for %d ids of dimension %d", name, len(vecs), len(ids), d)
	}
	for i, id := range ids {
		if id == "" || strings.ContainsAny(id, "\n\r") {
			return ShardInfo{}, fmt.Errorf("dense: shard %s: row %d: passage id %q is empty or has a line break", name, i, id)
		}
	}
	si := ShardInfo{Name: name, Count: len(ids), No: 0, Gen: 1}
	old, replace := s.shard(name)
	if replace {
		si.No, si.Gen = s.man.Shards[old].No, s.man.Shards[old].Gen+1
	} else {
		for _, o := range s.man.Shards {
			si.No = max(si.No, o.No+1)
		}
		if si.No >= MaxShards {
			return ShardInfo{}, fmt.Errorf("dense: shard %s: store is full (%d shards)", name, MaxShards)
		}
	}
	for i := 0; i < len(ids); i++ {
		si.MaxSqNorm = max(si.MaxSqNorm, sqNorm(vecs[i*d:(i+1)*d]))
	}
	if err := ctx.Err(); err != nil {
		return ShardInfo{}, err
	}
	var err error
	if si.VecCRC, err = s.writeVec(si, vecs); err != nil {
		return ShardInfo{}, err
	}
	if si.IDsCRC, err = s.writeIDs(si, ids); err != nil {
		return ShardInfo{}, err
	}
	var prev *ShardInfo
	if replace {
		p := s.man.Shards[old]
		prev = &p
		s.man.Shards[old] = si
	} else {
		s.man.Shards = append(s.man.Shards, si)
	}
	if err := s.writeManifest(); err != nil {
		return ShardInfo{}, err
	}
	s.mu.Lock()
	delete(s.ids, si.No)
	s.byPID = nil
	s.mu.Unlock()
	if prev != nil {
		os.Remove(filepath.Join(s.dir, prev.vecFile()))
		os.Remove(filepath.Join(s.dir, prev.idsFile()))
	}
	return si, nil
}

// RemoveShard drops a shard (its number is not reused while higher ones
// exist).
func (s *Store) RemoveShard(name string) error {
	i, ok := s.shard(name)
	if !ok {
		return fmt.Errorf("dense: remove shard %s: no such shard", name)
	}
	si := s.man.Shards[i]
	s.man.Shards = slices.Delete(s.man.Shards, i, i+1)
	if err := s.writeManifest(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.ids, si.No)
	s.byPID = nil
	s.mu.Unlock()
	os.Remove(filepath.Join(s.dir, si.vecFile()))
	os.Remove(filepath.Join(s.dir, si.idsFile()))
	return nil
}

func sqNorm(v []float32) float32 {
	var s float32
	for _, f := range v {
		s += f * f
	}
	return s
}

// crcWriter computes CRC-32C of what passes through.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, crcTable, p)
	return c.w.Write(p)
}

func (s *Store) writeVec(si ShardInfo, vecs []float32) (uint32, error) {
	path := filepath.Join(s.dir, si.vecFile())
	var crc uint32
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := &crcWriter{w: bw}
		var h [headerSize]byte
		copy(h[:8], vecMagic)
		if s.man.DType == F16 {
			binary.LittleEndian.PutUint32(h[8:], 1)
		}
		binary.LittleEndian.PutUint32(h[12:], uint32(s.man.Dim))
		binary.LittleEndian.PutUint64(h[16:], uint64(si.Count))
		if _, err := cw.Write(h[:]); err != nil {
			return err
		}
		var buf [4]byte
		for _, f := range vecs {
			if s.man.DType == F16 {
				binary.LittleEndian.PutUint16(buf[:], f32ToF16(f))
				if _, err := cw.Write(buf[:2]); err != nil {
					return err
				}
			} else {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(f))
				if _, err := cw.Write(buf[:]); err != nil {
					return err
				}
			}
		}
		crc = cw.crc
		return bw.Flush()
	})
	if err != nil {
		return 0, fmt.Errorf("dense: shard %s: %w", si.Name, err)
	}
	return crc, nil
}

func (s *Store) writeIDs(si ShardInfo, ids []string) (uint32, error) {
	path := filepath.Join(s.dir, si.idsFile())
	var crc uint32
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := &crcWriter{w: bw}
		for _, id := range ids {
			if _, err := io.WriteString(cw, id+"\n"); err != nil {
				return err
			}
		}
		crc = cw.crc
		return bw.Flush()
	})
	if err != nil {
		return 0, fmt.Errorf("dense: shard %s: %w", si.Name, err)
	}
	return crc, nil
}

// ReadShard reads a shard's passage ids and vectors (as float32), checking
// them against the manifest.
func (s *Store) ReadShard(ctx context.Context, name string) (ShardInfo, []string, []float32, error) {
	i, ok := s.shard(name)
	if !ok {
		return ShardInfo{}, nil, nil, fmt.Errorf("dense: read shard %s: no such shard in %s", name, s.dir)
	}
	si := s.man.Shards[i]
	if err := ctx.Err(); err != nil {
		return si, nil, nil, err
	}
	vecs, err := s.readVec(si)
	if err != nil {
		return si, nil, nil, err
	}
	ids, err := s.readIDs(si)
	if err != nil {
		return si, nil, nil, err
	}
	return si, ids, vecs, nil
}

func (s *Store) readVec(si ShardInfo) ([]float32, error) {
	path := filepath.Join(s.dir, si.vecFile())
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dense: shard %s: %w", si.Name, err)
	}
	if crc := crc32.Checksum(b, crcTable); crc != si.VecCRC {
		return nil, fmt.Errorf("dense: %s: %w: CRC-32C %08x, manifest says %08x", path, ErrCorrupt, crc, si.VecCRC)
	}
	width := 4
	if s.man.DType == F16 {
		width = 2
	}
	d := s.man.Dim
	if len(b) < headerSize || string(b[:8]) != vecMagic ||
		int(binary.LittleEndian.Uint32(b[12:])) != d ||
		int(binary.LittleEndian.Uint64(b[16:])) != si.Count ||
		len(b) != headerSize+si.Count*d*width {
		return nil, fmt.Errorf("dense: %s: %w: header or size does not match %d×%d %s", path, ErrCorrupt, si.Count, d, s.man.DType)
	}
	b = b[headerSize:]
	out := make([]float32, si.Count*d)
	for i := range out {
		if width == 2 {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		} else {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return out, nil
}

func (s *Store) readIDs(si ShardInfo) ([]string, error) {
	path := filepath.Join(s.dir, si.idsFile())
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dense: shard %s: %w", si.Name, err)
	}
	if crc := crc32.Checksum(b, crcTable); crc != si.IDsCRC {
		return nil, fmt.Errorf("dense: %s: %w: CRC-32C %08x, manifest says %08x", path, ErrCorrupt, crc, si.IDsCRC)
	}
	ids := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(ids) != si.Count {
		return nil, fmt.Errorf("dense: %s: %w: %d ids, manifest says %d", path, ErrCorrupt, len(ids), si.Count)
	}
	return ids, nil
}

// PassageID maps a FAISS id back to its passage id.
func (s *Store) PassageID(id int64) (string, error) {
	no, row := SplitID(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, ok := s.ids[no]
	if !ok {
		i := slices.IndexFunc(s.man.Shards, func(si ShardInfo) bool { return si.No == no })
		if i < 0 || id < 0 {
			return "", fmt.Errorf("%w %d: no shard %d in %s", ErrUnknownID, id, no, s.dir)
		}
		var err error
		if ids, err = s.readIDs(s.man.Shards[i]); err != nil {
			return "", err
		}
		s.ids[no] = ids
	}
	if row >= len(ids) {
		return "", fmt.Errorf("%w %d: shard %d has %d rows", ErrUnknownID, id, no, len(ids))
	}
	return ids[row], nil
}

// Merge copies every shard of src into dst as new shards (numbered after
// dst's), e.g. to combine the stores written by several encoder jobs. Shard
// names must not clash; dims must agree (dtypes may differ: vectors are
// converted to dst's).
func Merge(ctx context.Context, dst, src *Store) error {
	if dst.man.Dim != src.man.Dim {
		return fmt.Errorf("dense: merge %s into %s: dimension %d vs %d", src.dir, dst.dir, src.man.Dim, dst.man.Dim)
	}
	for _, si := range src.man.Shards {
		if _, clash := dst.shard(si.Name); clash {
			return fmt.Errorf("dense: merge %s into %s: both have a shard %q", src.dir, dst.dir, si.Name)
		}
	}
	for _, si := range src.man.Shards {
		_, ids, vecs, err := src.ReadShard(ctx, si.Name)
		if err != nil {
			return fmt.Errorf("dense: merge: %w", err)
		}
		if _, err := dst.PutShard(ctx, si.Name, ids, vecs); err != nil {
			return fmt.Errorf("dense: merge: %w", err)
		}
	}
	return nil
}
