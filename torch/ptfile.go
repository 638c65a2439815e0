package torch

// Reading PyTorch checkpoints (pytorch_model.bin, torch.save) without Python.
//
// torch.save (torch >= 1.6) writes a zip archive: <prefix>/data.pkl, a
// pickle of the saved object in which every storage is a persistent id
// ('storage', torch.FloatStorage, key, location, numel); <prefix>/data/<key>,
// each storage's raw bytes, stored uncompressed and 64-byte aligned;
// <prefix>/version; since torch 2.1 <prefix>/byteorder. Tensors are
// _rebuild_tensor_v2(storage, offset, size, stride, ...) calls in the
// pickle, so several tensors may view one storage (tied weights) and a view
// need not be contiguous. The legacy format (torch < 1.6, or
// _use_new_zipfile_serialization=False) is a sequence of pickles followed by
// the storages' bytes, each after an 8-byte element count; it is read too.
//
// Why our own restricted unpickler (pickle.go) rather than a general pickle
// library:
//
//   - Safety. A pickle is a program: a general unpickler imports and calls
//     whatever the file names (os.system included). Ours, like
//     torch.load(weights_only=True), knows only the opcodes and globals a
//     state dict uses, calls nothing, and rejects any other global by name,
//     so a checkpoint from anywhere can be opened.
//   - Zero copy. The pickle only describes tensors; their bytes stay in the
//     archive, which is memory-mapped (as safetensors files are) and copied
//     straight from the mapping into libtorch, onto the target device and
//     dtype. No Go-heap copy of gigabytes of weights is ever made, and a
//     library that materialises storages as Go byte slices would make one.
//   - Bounds. Every length, offset, index and element count read from the
//     file is checked against the bytes actually there, so a corrupt or
//     hostile file gives an error naming the file and the tensor or opcode,
//     never a panic or an allocation the file asked for.
//
// Only non-contiguous views (a transposed or strided tensor saved as is) and
// compressed zip entries (torch never writes them; other zip tools might)
// go through a Go buffer of that one tensor's size.

/*
#include "re2g_torch.h"
*/
import "C"

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// maxPickle bounds data.pkl: a state dict's pickle is about 150 bytes per
// tensor, so this allows millions of tensors.
const maxPickle = 512 << 20

// maxMaterialize bounds the bytes of a non-contiguous view holding more
// elements than its storage (a broadcast saved as is).
const maxMaterialize = 1 << 28

// legacyMagic is the first pickle of the legacy torch.save format:
// PROTO 2, LONG1 10 bytes of 0x1950a86a20f9469cfc6c, STOP.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'}

// ptStorage is one storage of the file.
type ptStorage struct {
	key   string
	typ   string
	dtype DType // -1 when re2g does not load the type
	numel int64
	off   int64     // offset of its bytes in the mapping, -1 when compressed
	zf    *zip.File // the entry, when compressed
}

type ptInfo struct {
	TensorInfo
	st         *ptStorage
	offset     int64 // in elements
	stride     []int64
	contiguous bool
}

// PyTorchFile is a memory-mapped PyTorch checkpoint (torch.save of a state
// dict: pytorch_model.bin): the same surface as SafetensorsFile.
type PyTorchFile struct {
	Path   string
	Legacy bool // the pre-1.6 (non-zip) format
	infos  map[string]*ptInfo
	names  []string
	alias  map[string]string // name -> first name viewing the same elements
	data   []byte            // the whole mapping
	mapped bool              // data is a mapping to unmap on Close
	cache  struct {          // the last compressed storage read
		sync.Mutex
		st  *ptStorage
		buf []byte
	}
}

// OpenPyTorch maps path and reads its pickle with a restricted unpickler
// (tensors only, no code run), validating every tensor's storage, dtype,
// shape, strides and byte range.
func OpenPyTorch(path string) (*PyTorchFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pytorch: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pytorch %s: %w", path, err)
	}
	size := st.Size()
	if size < 4 {
		return nil, fmt.Errorf("pytorch %s: file of %d bytes is too short for a checkpoint (truncated?)", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("pytorch %s: file of %d bytes cannot be mapped", path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("pytorch %s: mmap: %w", path, err)
	}
	pf, err := parsePyTorch(path, data)
	if err != nil {
		syscall.Munmap(data)
		return nil, err
	}
	pf.mapped = true
	return pf, nil
}

// parsePyTorch reads the checkpoint held in data (the file at path).
func parsePyTorch(path string, data []byte) (*PyTorchFile, error) {
	pf := &PyTorchFile{Path: path, data: data}
	var err error
	switch {
	case len(data) < 4:
		err = fmt.Errorf("file of %d bytes is too short for a checkpoint (truncated?)", len(data))
	case bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")):
		err = pf.readZip()
	case bytes.HasPrefix(data, legacyMagic):
		pf.Legacy = true
		err = pf.readLegacy()
	case data[0] == 0x80:
		err = fmt.Errorf("a pickle without torch.save's zip archive or legacy header; re2g reads torch.save files only " +
			"(re-save it with torch.save(torch.load(p), p) in torch >= 1.6, or save_pretrained(safe_serialization=True))")
	default:
		err = fmt.Errorf("not a torch.save checkpoint (neither a zip archive nor the legacy format; truncated or corrupt?)")
	}
	if err != nil {
		return nil, fmt.Errorf("pytorch %s: %w", path, err)
	}
	pf.finish()
	return pf, nil
}

// readZip reads the archive of torch >= 1.6.
func (pf *PyTorchFile) readZip() error {
	size := int64(len(pf.data))
	zr, err := zip.NewReader(bytes.NewReader(pf.data), size)
	if err != nil {
		return fmt.Errorf("zip archive: %w (truncated or corrupt?)", err)
	}
	entries := map[string]*zip.File{}
	prefix := ""
	for _, zf := range zr.File {
		if _, dup := entries[zf.Name]; dup {
			return fmt.Errorf("zip entry %q appears twice", zf.Name)
		}
		entries[zf.Name] = zf
		if strings.HasSuffix(zf.Name, "/data.pkl") && strings.Count(zf.Name, "/") == 1 {
			if prefix != "" {
				return fmt.Errorf("two data.pkl records (%s and %s): not a single torch.save archive", prefix+"data.pkl", zf.Name)
			}
			prefix = strings.TrimSuffix(zf.Name, "data.pkl")
		}
	}
	if prefix == "" {
		return fmt.Errorf("zip archive without <name>/data.pkl: not a torch.save checkpoint")
	}
	if bo, ok := entries[prefix+"byteorder"]; ok {
		b, err := readEntry(bo, 64, size)
		if err != nil {
			return fmt.Errorf("%s: %w", bo.Name, err)
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return fmt.Errorf("byte order %q: only little-endian checkpoints are supported", s)
		}
	}
	pkl, err := readEntry(entries[prefix+"data.pkl"], maxPickle, size)
	if err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	storages := map[string]*ptStorage{}
	persistent := func(pid any) (any, error) {
		ref, err := storageRef(pid)
		if err != nil {
			return nil, err
		}
		if s, ok := storages[ref.key]; ok {
			if s.typ != ref.typ || s.numel != ref.numel {
				return nil, fmt.Errorf("storage %q is both %d of %s and %d of %s", ref.key, s.numel, s.typ, ref.numel, ref.typ)
			}
			return ref, nil
		}
		s, err := newStorage(ref)
		if err != nil {
			return nil, err
		}
		name := prefix + "data/" + ref.key
		zf, ok := entries[name]
		if !ok {
			return nil, fmt.Errorf("storage %q has no record %s in the archive (truncated?)", ref.key, name)
		}
		if s.dtype >= 0 {
			if want := s.numel * int64(s.dtype.Size()); zf.UncompressedSize64 != uint64(want) {
				return nil, fmt.Errorf("storage %q holds %d bytes, %d of %s need %d (corrupt?)", ref.key, zf.UncompressedSize64, s.numel, s.typ, want)
			}
		}
		if err := checkEntry(zf, size); err != nil {
			return nil, fmt.Errorf("storage %q: %w", ref.key, err)
		}
		if zf.Method == zip.Store {
			off, err := zf.DataOffset()
			if err != nil {
				return nil, fmt.Errorf("storage %q: %w", ref.key, err)
			}
			if off < 0 || off > size || zf.UncompressedSize64 > uint64(size-off) {
				return nil, fmt.Errorf("storage %q: bytes [%d, +%d) outside the %d-byte file (truncated?)", ref.key, off, zf.UncompressedSize64, size)
			}
			s.off = off
		} else {
			s.off, s.zf = -1, zf
		}
		storages[ref.key] = s
		return ref, nil
	}
	obj, _, err := unpickle(pkl, 0, persistent)
	if err != nil {
		return fmt.Errorf("%sdata.pkl: %w", prefix, err)
	}
	return pf.collect(obj, storages)
}

// readLegacy reads the format of torch < 1.6: pickles of the magic number,
// the protocol version and system info, the object, the sorted storage
// keys; then per key an int64 element count and the storage's bytes.
func (pf *PyTorchFile) readLegacy() error {
	data := pf.data
	pos := len(legacyMagic)
	ver, pos2, err := unpickle(data, pos, nil)
	if err != nil {
		return fmt.Errorf("legacy format: protocol version: %w", err)
	}
	if v, ok := ver.(int64); !ok || v != 1001 {
		return fmt.Errorf("legacy format: protocol version %v, want 1001", ver)
	}
	info, pos3, err := unpickle(data, pos2, nil)
	if err != nil {
		return fmt.Errorf("legacy format: system info: %w", err)
	}
	if d, ok := info.(*pyDict); ok {
		if le, ok := d.vals["little_endian"].(bool); ok && !le {
			return fmt.Errorf("legacy format: saved on a big-endian machine: only little-endian checkpoints are supported")
		}
	}
	refs := map[string]*ptStorageRef{}
	persistent := func(pid any) (any, error) {
		t, ok := pid.(pyTuple)
		if !ok || len(t) != 6 {
			return nil, fmt.Errorf("legacy persistent id is a %s, want ('storage', type, key, location, numel, view)", pyType(pid))
		}
		if t[5] != nil {
			return nil, fmt.Errorf("legacy storage views are not supported")
		}
		ref, err := storageRef(t[:5])
		if err != nil {
			return nil, err
		}
		if r, ok := refs[ref.key]; ok {
			if r.typ != ref.typ || r.numel != ref.numel {
				return nil, fmt.Errorf("storage %q is both %d of %s and %d of %s", ref.key, r.numel, r.typ, ref.numel, ref.typ)
			}
			return r, nil
		}
		refs[ref.key] = ref
		return ref, nil
	}
	obj, pos4, err := unpickle(data, pos3, persistent)
	if err != nil {
		return fmt.Errorf("legacy format: %w", err)
	}
	keysObj, pos5, err := unpickle(data, pos4, nil)
	if err != nil {
		return fmt.Errorf("legacy format: storage keys: %w", err)
	}
	kl, ok := keysObj.(*pyList)
	if !ok {
		return fmt.Errorf("legacy format: storage keys are a %s, not a list", pyType(keysObj))
	}
	storages := map[string]*ptStorage{}
	off := int64(pos5)
	size := int64(len(data))
	for _, k := range kl.items {
		key, ok := k.(string)
		if !ok {
			return fmt.Errorf("legacy format: storage key is a %s", pyType(k))
		}
		ref, ok := refs[key]
		if !ok {
			return fmt.Errorf("legacy format: storage %q is listed but used by no tensor", key)
		}
		if _, dup := storages[key]; dup {
			return fmt.Errorf("legacy format: storage %q listed twice", key)
		}
		s, err := newStorage(ref)
		if err != nil {
			return err
		}
		if s.dtype < 0 {
			return fmt.Errorf("legacy format: storage %q of unsupported type torch.%s (its byte size is unknown)", key, s.typ)
		}
		if size-off < 8 {
			return fmt.Errorf("legacy format: storage %q: file ends at byte %d before its size (truncated)", key, size)
		}
		n := int64(binary.LittleEndian.Uint64(data[off:]))
		if n != s.numel {
			return fmt.Errorf("legacy format: storage %q has %d elements, the pickle says %d (corrupt?)", key, n, s.numel)
		}
		nb := s.numel * int64(s.dtype.Size())
		off += 8
		if nb > size-off {
			return fmt.Errorf("legacy format: storage %q: %d bytes at %d outside the %d-byte file (truncated)", key, nb, off, size)
		}
		s.off = off
		off += nb
		storages[key] = s
	}
	for key := range refs {
		if _, ok := storages[key]; !ok {
			return fmt.Errorf("legacy format: storage %q is not in the file (truncated?)", key)
		}
	}
	return pf.collect(obj, storages)
}

// storageRef checks a persistent id ('storage', torch.XStorage, key, location, numel).
func storageRef(pid any) (*ptStorageRef, error) {
	t, ok := pid.(pyTuple)
	if !ok || len(t) != 5 {
		return nil, fmt.Errorf("persistent id is a %s, want ('storage', type, key, location, numel)", pyType(pid))
	}
	if s, ok := t[0].(string); !ok || s != "storage" {
		return nil, fmt.Errorf("persistent id of kind %s, want 'storage'", pyType(t[0]))
	}
	g, ok := t[1].(pyGlobal)
	if !ok || g.module != "torch" || !strings.HasSuffix(g.name, "Storage") {
		return nil, fmt.Errorf("storage type is %s, not a torch.*Storage", pyType(t[1]))
	}
	key, ok1 := t[2].(string)
	loc, ok2 := t[3].(string)
	numel, ok3 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || numel < 0 {
		return nil, fmt.Errorf("storage id (%s, %s, %s) is not (key, location, element count)", pyType(t[2]), pyType(t[3]), pyType(t[4]))
	}
	return &ptStorageRef{typ: g.name, key: key, location: loc, numel: numel}, nil
}

func newStorage(ref *ptStorageRef) (*ptStorage, error) {
	s := &ptStorage{key: ref.key, typ: ref.typ, numel: ref.numel, dtype: -1}
	if dt, ok := storageDTypes[ref.typ]; ok {
		s.dtype = dt
		if ref.numel > math.MaxInt64/int64(dt.Size()) {
			return nil, fmt.Errorf("storage %q: %d elements overflow", ref.key, ref.numel)
		}
	}
	return s, nil
}

// collect turns the unpickled state dict into tensor infos.
func (pf *PyTorchFile) collect(obj any, storages map[string]*ptStorage) error {
	d, ok := obj.(*pyDict)
	if !ok {
		return fmt.Errorf("checkpoint holds a %s, not a state dict", pyType(obj))
	}
	pf.infos = map[string]*ptInfo{}
	var skipped []string
	for _, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("state dict key is a %s, not a string", pyType(k))
		}
		tr, ok := d.vals[k].(*ptTensorRef)
		if !ok {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", name, pyType(d.vals[k])))
			continue
		}
		info, err := tensorInfo(tr, storages[tr.storage.key])
		if err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		pf.infos[name] = info
		pf.names = append(pf.names, name)
	}
	if len(pf.names) == 0 && len(skipped) > 0 {
		if len(skipped) > 8 {
			skipped = append(skipped[:8], "...")
		}
		return fmt.Errorf("no tensors at the top level (a training checkpoint? it holds %s): save its state dict on its own", strings.Join(skipped, ", "))
	}
	sort.Strings(pf.names)
	return nil
}

func tensorInfo(tr *ptTensorRef, st *ptStorage) (*ptInfo, error) {
	if st == nil {
		return nil, fmt.Errorf("storage %q is not in the file", tr.storage.key)
	}
	if st.dtype < 0 {
		dt := otherStorages[st.typ]
		if dt == "" {
			dt = st.typ
		}
		return nil, fmt.Errorf("unsupported dtype %s (torch.%s); re2g loads float32, float16, bfloat16, float64, int64, int32 and bool", dt, st.typ)
	}
	if len(tr.size) != len(tr.stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", tr.size, tr.stride)
	}
	n, err := numel(tr.size)
	if err != nil {
		return nil, err
	}
	if tr.offset < 0 {
		return nil, fmt.Errorf("negative storage offset %d", tr.offset)
	}
	// the last element viewed, which must lie in the storage
	last := tr.offset
	for i, d := range tr.size {
		s := tr.stride[i]
		if s < 0 {
			return nil, fmt.Errorf("negative stride %v", tr.stride)
		}
		if d > 1 && s > 0 {
			if s > (math.MaxInt64-last)/(d-1) {
				return nil, fmt.Errorf("size %v with stride %v overflows", tr.size, tr.stride)
			}
			last += (d - 1) * s
		}
	}
	if n > 0 && last >= st.numel {
		return nil, fmt.Errorf("size %v, stride %v at offset %d reach element %d of a storage of %d (corrupt?)", tr.size, tr.stride, tr.offset, last, st.numel)
	}
	if n == 0 && tr.offset > st.numel {
		return nil, fmt.Errorf("offset %d beyond a storage of %d", tr.offset, st.numel)
	}
	shape := tr.size
	if shape == nil {
		shape = []int64{}
	}
	info := &ptInfo{TensorInfo: TensorInfo{DType: st.dtype, Shape: shape}, st: st, offset: tr.offset, stride: tr.stride}
	info.contiguous = isContiguous(tr.size, tr.stride)
	if n > math.MaxInt64/int64(st.dtype.Size()) {
		return nil, fmt.Errorf("size %v overflows", tr.size)
	}
	nb := n * int64(st.dtype.Size())
	if !info.contiguous && n > st.numel && nb > maxMaterialize {
		// overlapping strides (a broadcast, stride 0) can describe far more
		// elements than the storage holds, and Load materialises them
		return nil, fmt.Errorf("size %v, stride %v: a view of %d elements over a storage of %d is too large to materialise", tr.size, tr.stride, n, st.numel)
	}
	info.begin = tr.offset * int64(st.dtype.Size())
	info.end = info.begin + nb
	return info, nil
}

// isContiguous reports whether a view is row-major (dims of size 1 may have
// any stride; an empty view always is).
func isContiguous(size, stride []int64) bool {
	want := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] == 0 {
			return true
		}
		if size[i] != 1 && stride[i] != want {
			return false
		}
		want *= size[i]
	}
	return true
}

// finish records which names view the same elements (tied weights).
func (pf *PyTorchFile) finish() {
	pf.alias = map[string]string{}
	type viewKey struct {
		st     *ptStorage
		offset int64
		shape  string
	}
	first := map[viewKey]string{}
	for _, n := range pf.names { // sorted: the first name wins
		i := pf.infos[n]
		k := viewKey{i.st, i.offset, fmt.Sprint(i.Shape, i.stride)}
		if f, ok := first[k]; ok {
			pf.alias[n] = f
		} else {
			first[k] = n
		}
	}
}

// Names lists the tensors, sorted.
func (f *PyTorchFile) Names() []string { return f.names }

// Info describes tensor name.
func (f *PyTorchFile) Info(name string) (TensorInfo, bool) {
	i, ok := f.infos[name]
	if !ok {
		return TensorInfo{}, false
	}
	return i.TensorInfo, true
}

// Alias returns the first name (in sorted order) whose tensor is the same
// view of the same storage as name's: name itself unless the checkpoint
// ties it to another (as torch.save keeps tied weights, e.g. an LM head and
// its input embeddings, under every name).
func (f *PyTorchFile) Alias(name string) string {
	if a, ok := f.alias[name]; ok {
		return a
	}
	return name
}

// Storage reports which storage tensor name views and at which element
// offset (tensors sharing a storage share memory in PyTorch).
func (f *PyTorchFile) Storage(name string) (key string, offset int64, ok bool) {
	i, ok := f.infos[name]
	if !ok {
		return "", 0, false
	}
	return i.st.key, i.offset, true
}

// storageBytes returns the bytes of st: a slice of the mapping, or, for a
// compressed entry, a buffer read from it.
func (f *PyTorchFile) storageBytes(st *ptStorage) ([]byte, error) {
	nb := st.numel * int64(st.dtype.Size())
	if st.off >= 0 {
		return f.data[st.off : st.off+nb], nil
	}
	f.cache.Lock()
	defer f.cache.Unlock()
	if f.cache.st == st {
		return f.cache.buf, nil
	}
	b, err := readEntry(st.zf, nb, int64(len(f.data)))
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", st.key, err)
	}
	if int64(len(b)) != nb {
		return nil, fmt.Errorf("storage %q: %d bytes, want %d (corrupt?)", st.key, len(b), nb)
	}
	f.cache.st, f.cache.buf = st, b
	return b, nil
}

// Load copies tensor name to a new tensor owned by s on device dev,
// converted to dt (pass the tensor's own dtype, or -1, to keep it).
func (f *PyTorchFile) Load(s *Scope, name string, dev Device, dt DType) (*Tensor, error) {
	if f.data == nil {
		return nil, fmt.Errorf("pytorch %s: file is closed", f.Path)
	}
	info, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("pytorch %s: no tensor %q", f.Path, name)
	}
	if dt < 0 {
		dt = info.DType
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	var src []byte
	if info.end > info.begin {
		sb, err := f.storageBytes(info.st)
		if err != nil {
			return nil, fmt.Errorf("pytorch %s: tensor %q: %w", f.Path, name, err)
		}
		if info.contiguous {
			src = sb[info.begin:info.end]
		} else {
			src = make([]byte, info.end-info.begin)
			stridedCopy(src, sb, info.DType.Size(), info.offset, info.Shape, info.stride)
		}
	}
	var p unsafe.Pointer
	if len(src) > 0 {
		p = unsafe.Pointer(&src[0])
	} else {
		// An empty tensor still needs a non-null pointer for from_blob.
		var zero [8]byte
		p = unsafe.Pointer(&zero[0])
	}
	var h C.re2g_t
	if e := C.re2g_from_blob_to(p, C.int(info.DType), shapePtr(info.Shape), C.int(len(info.Shape)), C.int(dt),
		C.int(dev.Type), C.int(dev.Index), &h); e != nil {
		return nil, fmt.Errorf("pytorch %s: tensor %q: %w", f.Path, name, cErr("load", e))
	}
	return s.wrap(h), nil
}

// stridedCopy gathers the view (offset, shape, stride, in elements of es
// bytes) of src into dst, row-major. The view was checked to lie in src.
func stridedCopy(dst, src []byte, es int, offset int64, shape, stride []int64) {
	nd := len(shape)
	if nd == 0 {
		copy(dst, src[offset*int64(es):offset*int64(es)+int64(es)])
		return
	}
	inner, innerStride := shape[nd-1], stride[nd-1]
	idx := make([]int64, nd-1)
	out := 0
	for {
		base := offset
		for i, x := range idx {
			base += x * stride[i]
		}
		if innerStride == 1 {
			b := base * int64(es)
			out += copy(dst[out:], src[b:b+inner*int64(es)])
		} else {
			for j := int64(0); j < inner; j++ {
				b := (base + j*innerStride) * int64(es)
				out += copy(dst[out:out+es], src[b:b+int64(es)])
			}
		}
		// next index of the outer dims
		i := nd - 2
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// Close unmaps the file; tensors already loaded stay valid.
func (f *PyTorchFile) Close() error {
	if f.data == nil {
		return nil
	}
	var err error
	if f.mapped {
		err = syscall.Munmap(f.data)
	}
	f.data = nil
	f.cache.Lock()
	f.cache.st, f.cache.buf = nil, nil
	f.cache.Unlock()
	return err
}

// readEntry reads a zip entry of at most limit bytes of an archive of
// fileSize bytes, after checking that its sizes are possible: a corrupt
// header cannot make it allocate more than the entry can hold.
func readEntry(zf *zip.File, limit, fileSize int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record of %d bytes is larger than the %d allowed", zf.UncompressedSize64, limit)
	}
	if err := checkEntry(zf, fileSize); err != nil {
		return nil, err
	}
	r, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, zf.UncompressedSize64)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("record ends early (truncated or corrupt): %w", err)
		}
		return nil, err
	}
	return b, nil
}

// maxDeflateRatio is above deflate's largest expansion (about 1032:1).
const maxDeflateRatio = 1100

func checkEntry(zf *zip.File, fileSize int64) error {
	if zf.CompressedSize64 > uint64(fileSize) {
		return fmt.Errorf("record %s of %d bytes in a %d-byte file (truncated?)", zf.Name, zf.CompressedSize64, fileSize)
	}
	switch zf.Method {
	case zip.Store:
		if zf.CompressedSize64 != zf.UncompressedSize64 {
			return fmt.Errorf("stored record %s has sizes %d and %d (corrupt?)", zf.Name, zf.CompressedSize64, zf.UncompressedSize64)
		}
	case zip.Deflate:
		if zf.UncompressedSize64 > zf.CompressedSize64*maxDeflateRatio+1024 {
			return fmt.Errorf("record %s claims %d bytes from %d compressed (corrupt?)", zf.Name, zf.UncompressedSize64, zf.CompressedSize64)
		}
	default:
		return fmt.Errorf("record %s uses zip compression method %d; only stored and deflated records are read", zf.Name, zf.Method)
	}
	return nil
}
