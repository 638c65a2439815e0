package dense

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/internal/atomicfile"
)

// LinkShards adds to s the shards of src named in names that s lacks, in
// src's order and numbered after s's, without reading or rewriting their vectors: the files
// are hard-linked into s's directory (copied where a link cannot be made,
// e.g. across file systems), and s's manifest is written once, at the end,
// so that a crash leaves s as it was (a file linked before the crash names
// a shard no manifest lists, and the next call replaces it). A shard that s
// already has, by name, must have the same count and checksums; it is
// skipped. src is left as it is: the caller removes it once s is written.
// It returns how many shards it added.
func (s *Store) LinkShards(ctx context.Context, src *Store, names []string) (int, error) {
	if s.man.Dim != src.man.Dim || s.man.DType != src.man.DType {
		return 0, fmt.Errorf("dense: link %s into %s: dim %d dtype %s vs dim %d dtype %s", src.dir, s.dir, src.man.Dim, src.man.DType, s.man.Dim, s.man.DType)
	}
	next, have := 0, s.byName()
	for _, si := range s.man.Shards {
		next = max(next, si.No+1)
	}
	want, in := make(map[string]bool, len(names)), src.byName()
	for _, n := range names {
		if _, ok := in[n]; !ok {
			return 0, fmt.Errorf("dense: link %s into %s: no shard %q in %s", src.dir, s.dir, n, src.dir)
		}
		want[n] = true
	}
	var added []ShardInfo
	for _, si := range src.man.Shards {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if !want[si.Name] {
			continue
		}
		if i, ok := have[si.Name]; ok {
			old := s.man.Shards[i]
			if old.Count != si.Count || old.VecCRC != si.VecCRC || old.IDsCRC != si.IDsCRC {
				return 0, fmt.Errorf("dense: link %s into %s: shard %s differs (%d rows, CRC-32C %08x, against %d rows, %08x)",
					src.dir, s.dir, si.Name, si.Count, si.VecCRC, old.Count, old.VecCRC)
			}
			continue
		}
		if next >= MaxShards {
			return 0, fmt.Errorf("dense: link %s into %s: store is full (%d shards)", src.dir, s.dir, MaxShards)
		}
		for _, f := range []string{si.vecFile(), si.idsFile()} {
			if err := linkFile(filepath.Join(src.dir, f), filepath.Join(s.dir, f)); err != nil {
				return 0, fmt.Errorf("dense: link %s into %s: %w", src.dir, s.dir, err)
			}
		}
		n := si
		n.No = next
		next++
		added = append(added, n)
	}
	if len(added) == 0 {
		return 0, nil
	}
	s.man.Shards = append(s.man.Shards, added...)
	if err := s.writeManifest(); err != nil {
		s.man.Shards = s.man.Shards[:len(s.man.Shards)-len(added)]
		return 0, err
	}
	s.mu.Lock()
	s.byPID = nil
	s.mu.Unlock()
	return len(added), nil
}

// byName maps shard names to their places in the manifest.
func (s *Store) byName() map[string]int {
	m := make(map[string]int, len(s.man.Shards))
	for i, si := range s.man.Shards {
		m[si.Name] = i
	}
	return m
}

// linkFile makes dst a hard link to src, replacing a file at dst, or a copy
// where a link cannot be made.
func linkFile(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// Renumber numbers the shards in the order of names, which must list each
// shard once: names[i] becomes shard i, and the manifest lists the shards
// in that order, which is the order BuildIndex adds them in. FAISS ids carry
// shard numbers (FaissID), so only a store that no index has been built
// from may be renumbered. A store already in that order is not rewritten.
func (s *Store) Renumber(names []string) error {
	if len(names) != len(s.man.Shards) {
		return fmt.Errorf("dense: renumber %s: %d names for %d shards", s.dir, len(names), len(s.man.Shards))
	}
	out := make([]ShardInfo, len(names))
	same, at, seen := true, s.byName(), make(map[string]bool, len(names))
	for i, n := range names {
		j, ok := at[n]
		if !ok {
			return fmt.Errorf("dense: renumber %s: no shard %q", s.dir, n)
		}
		if seen[n] {
			return fmt.Errorf("dense: renumber %s: shard %q named twice", s.dir, n)
		}
		seen[n] = true
		out[i] = s.man.Shards[j]
		out[i].No = i
		same = same && j == i && s.man.Shards[j].No == i
	}
	if same {
		return nil
	}
	old := s.man.Shards
	s.man.Shards = out
	if err := s.writeManifest(); err != nil {
		s.man.Shards = old
		return err
	}
	s.mu.Lock()
	s.ids = map[int][]string{}
	s.byPID = nil
	s.mu.Unlock()
	return nil
}
