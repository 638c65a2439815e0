package dense

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Vectors reads the stored vectors of the given FAISS ids, row-major
// (len(ids)×Dim), each row read from its shard file at its offset: nothing
// else of the store is loaded. Unknown ids are errors.
func (s *Store) Vectors(ids []int64) ([]float32, error) {
	d := s.man.Dim
	width := 4
	if s.man.DType == F16 {
		width = 2
	}
	out := make([]float32, len(ids)*d)
	buf := make([]byte, d*width)
	files := map[int]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for k, id := range ids {
		no, row := SplitID(id)
		i := slices.IndexFunc(s.man.Shards, func(si ShardInfo) bool { return si.No == no })
		if id < 0 || i < 0 {
			return nil, fmt.Errorf("%w %d: no shard %d in %s", ErrUnknownID, id, no, s.dir)
		}
		si := s.man.Shards[i]
		if row >= si.Count {
			return nil, fmt.Errorf("%w %d: shard %d has %d rows", ErrUnknownID, id, no, si.Count)
		}
		f, ok := files[no]
		if !ok {
			var err error
			if f, err = os.Open(filepath.Join(s.dir, si.vecFile())); err != nil {
				return nil, fmt.Errorf("dense: shard %s: %w", si.Name, err)
			}
			files[no] = f
		}
		if _, err := f.ReadAt(buf, int64(headerSize)+int64(row)*int64(d*width)); err != nil {
			return nil, fmt.Errorf("dense: shard %s row %d: %w: %v", si.Name, row, ErrCorrupt, err)
		}
		dst := out[k*d : (k+1)*d]
		for j := range dst {
			if width == 2 {
				dst[j] = f16ToF32(binary.LittleEndian.Uint16(buf[2*j:]))
			} else {
				dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
		}
	}
	return out, nil
}

// Lookup maps passage ids to their FAISS ids (false for an id the store
// lacks). The first call reads every shard's id list into a map kept by the
// store: one string per stored passage, no vectors.
func (s *Store) Lookup(pids []string) ([]int64, []bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPID == nil {
		m := make(map[string]int64, s.Count())
		for _, si := range s.man.Shards {
			ids, ok := s.ids[si.No]
			if !ok {
				var err error
				if ids, err = s.readIDs(si); err != nil {
					return nil, nil, err
				}
				s.ids[si.No] = ids
			}
			for r, pid := range ids {
				m[pid] = FaissID(si.No, r)
			}
		}
		s.byPID = m
	}
	out := make([]int64, len(pids))
	found := make([]bool, len(pids))
	for i, p := range pids {
		out[i], found[i] = s.byPID[p]
	}
	return out, found, nil
}
