package torch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const ptbin = "../testdata/ptbin"

type ptExpected struct {
	DType  string    `json:"dtype"`
	Shape  []int64   `json:"shape"`
	Hex    string    `json:"hex"`
	Values []float64 `json:"values"`
}

func readExpected(t *testing.T) map[string]map[string]ptExpected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ptbin, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	// bools are written as true/false: read them as numbers
	b = bytes.ReplaceAll(b, []byte("true"), []byte("1"))
	b = bytes.ReplaceAll(b, []byte("false"), []byte("0"))
	var e struct {
		Files map[string]map[string]ptExpected `json:"files"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.Files
}

// checkPT loads every tensor of f and compares it with want, bit for bit.
func checkPT(t *testing.T, f *PyTorchFile, want map[string]ptExpected) {
	t.Helper()
	s := NewScope()
	defer s.Close()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(f.Names(), ",") != strings.Join(names, ",") {
		t.Fatalf("%s: names %v, want %v", f.Path, f.Names(), names)
	}
	for _, n := range names {
		w := want[n]
		info, ok := f.Info(n)
		if !ok || info.DType.String() != w.DType || !sameInts(info.Shape, w.Shape) {
			t.Fatalf("%s: %s: info %v %v, want %s %v", f.Path, n, info.DType, info.Shape, w.DType, w.Shape)
		}
		x, err := f.Load(s, n, CPUDevice, -1)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if x.DType() != info.DType || !sameInts(x.Shape(), w.Shape) {
			t.Fatalf("%s: loaded %v", n, x)
		}
		b, err := x.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(b) != w.Hex {
			t.Fatalf("%s: %s: bytes %x, want %s", f.Path, n, b, w.Hex)
		}
		got, err := x.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(w.Values) {
			t.Fatalf("%s: %d values, want %d", n, len(got), len(w.Values))
		}
		for i := range got {
			if x.DType() == Int64 {
				continue // float64 cannot hold every int64: the bytes were compared
			}
			if got[i] != w.Values[i] {
				t.Fatalf("%s: %s[%d] = %v, want %v", f.Path, n, i, got[i], w.Values[i])
			}
		}
		if x.DType() == Int64 {
			iv, _ := x.Int64s()
			for i := range iv {
				if float64(iv[i]) != w.Values[i] {
					t.Fatalf("%s: %s[%d] = %v, want %v", f.Path, n, i, iv[i], w.Values[i])
				}
			}
		}
	}
}

func sameInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func openPT(t *testing.T, path string) *PyTorchFile {
	t.Helper()
	f, err := OpenPyTorch(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPyTorchFixtures reads files written by torch.save (torch 1.13,
// scripts/make_ptbin_fixtures.py) and compares every element with what torch
// recorded.
func TestPyTorchFixtures(t *testing.T) {
	exp := readExpected(t)
	for file, want := range map[string]string{
		"tensors.bin": "tensors.bin", "protocol4.bin": "tensors.bin", "deflate.bin": "tensors.bin",
		"module.bin": "module.bin", "legacy.bin": "module.bin",
	} {
		t.Run(file, func(t *testing.T) {
			f := openPT(t, filepath.Join(ptbin, file))
			if f.Legacy != (file == "legacy.bin") {
				t.Errorf("Legacy = %v", f.Legacy)
			}
			checkPT(t, f, exp[want])
		})
	}
	// the shards: each holds part of "sharded"
	all := exp["sharded"]
	seen := 0
	for _, shard := range []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"} {
		f := openPT(t, filepath.Join(ptbin, "sharded", shard))
		part := map[string]ptExpected{}
		for _, n := range f.Names() {
			part[n] = all[n]
		}
		seen += len(part)
		checkPT(t, f, part)
	}
	if seen != len(all) {
		t.Fatalf("shards hold %d tensors, want %d", seen, len(all))
	}
}

func TestPyTorchViews(t *testing.T) {
	f := openPT(t, filepath.Join(ptbin, "tensors.bin"))
	// tied weights: one storage, one view, two names
	ka, oa, _ := f.Storage("tied.a")
	kb, ob, _ := f.Storage("tied.b")
	kr, or, _ := f.Storage("tied.row")
	if ka != kb || ka != kr || oa != 0 || ob != 0 || or != 6 {
		t.Fatalf("tied storages %q@%d %q@%d %q@%d", ka, oa, kb, ob, kr, or)
	}
	if f.Alias("tied.b") != "tied.a" || f.Alias("tied.a") != "tied.a" || f.Alias("tied.row") != "tied.row" || f.Alias("f32") != "f32" {
		t.Fatalf("aliases %q %q %q", f.Alias("tied.a"), f.Alias("tied.b"), f.Alias("tied.row"))
	}
	for name, contiguous := range map[string]bool{
		"transposed": false, "step": false, "expanded": false, "slice": true, "scalar": true, "empty": true, "tied.row": true,
	} {
		if got := f.infos[name].contiguous; got != contiguous {
			t.Errorf("%s: contiguous %v, want %v (stride %v)", name, got, contiguous, f.infos[name].stride)
		}
	}
	if _, off, _ := f.Storage("slice"); off != 7 {
		t.Errorf("slice offset %d", off)
	}
	// conversion on load
	s := NewScope()
	defer s.Close()
	x, err := f.Load(s, "transposed", CPUDevice, BFloat16)
	if err != nil || x.DType() != BFloat16 || !sameInts(x.Shape(), []int64{5, 3}) {
		t.Fatalf("bf16 load: %v %v", x, err)
	}
	if _, err := f.Load(s, "nope", CPUDevice, -1); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Fatalf("missing tensor: %v", err)
	}
	f.Close()
	if _, err := f.Load(s, "f32", CPUDevice, -1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("load after close: %v", err)
	}
}

func TestStridedCopy(t *testing.T) {
	// a 3x4 view with strides (1, 3) of a 12-element storage of int16, offset 0
	src := make([]byte, 24)
	for i := 0; i < 12; i++ {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
	}
	dst := make([]byte, 24)
	stridedCopy(dst, src, 2, 0, []int64{3, 4}, []int64{1, 3})
	want := []uint16{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}
	for i, w := range want {
		if g := binary.LittleEndian.Uint16(dst[2*i:]); g != w {
			t.Fatalf("element %d = %d, want %d", i, g, w)
		}
	}
	// 3-d with an offset and a stride-0 dim
	dst = make([]byte, 2*2*2*2)
	stridedCopy(dst, src, 2, 1, []int64{2, 2, 2}, []int64{6, 0, 2})
	want = []uint16{1, 3, 1, 3, 7, 9, 7, 9}
	for i, w := range want {
		if g := binary.LittleEndian.Uint16(dst[2*i:]); g != w {
			t.Fatalf("3-d element %d = %d, want %d", i, g, w)
		}
	}
}

// pk writes pickles for the tests, as torch.save's protocol 2 does.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }
func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}
func (p *pk) int(v int64) *pk {
	p.WriteByte('J')
	binary.Write(p, binary.LittleEndian, int32(v))
	return p
}
func (p *pk) global(m, n string) *pk { p.WriteString("c" + m + "\n" + n + "\n"); return p }
func (p *pk) ints(vs ...int64) *pk {
	p.op('(')
	for _, v := range vs {
		p.int(v)
	}
	return p.op('t')
}

// tensor pushes _rebuild_tensor_v2(('storage', torch.<typ>, key, 'cpu', numel), off, size, stride, False, OrderedDict()).
func (p *pk) tensor(typ, key string, numel, off int64, size, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", typ).str(key).str("cpu").int(numel).op('t', 'Q')
	p.int(off).ints(size...).ints(stride...).op(0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	return p
}

// stateDict pickles {name: tensor} with items written by each function.
func stateDict(items ...func(*pk)) []byte {
	p := &pk{}
	p.op(0x80, 2).global("collections", "OrderedDict").op(')', 'R', '(')
	for _, it := range items {
		it(p)
	}
	p.op('u', '.')
	return p.Bytes()
}

type zent struct {
	name string
	data []byte
}

func writeZip(t *testing.T, path string, ents ...zent) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func f32bytes(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestPyTorchHandmade checks a hand-written archive loads, so that the
// corrupt variants below differ from a good file in one thing only.
func TestPyTorchHandmade(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.bin")
	pkl := stateDict(func(p *pk) {
		p.str("w").tensor("FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1})
		p.str("wt").tensor("FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3})
		p.str("tail").tensor("FloatStorage", "0", 6, 4, []int64{2}, []int64{1})
	})
	writeZip(t, p, zent{"m/data.pkl", pkl}, zent{"m/data/0", f32bytes(1, 2, 3, 4, 5, 6)}, zent{"m/version", []byte("3\n")}, zent{"m/byteorder", []byte("little")})
	f := openPT(t, p)
	s := NewScope()
	defer s.Close()
	for name, want := range map[string][]float32{"w": {1, 2, 3, 4, 5, 6}, "wt": {1, 4, 2, 5, 3, 6}, "tail": {5, 6}} {
		x, err := f.Load(s, name, CPUDevice, -1)
		if err != nil {
			t.Fatal(err)
		}
		near(t, name, vals(t, x), want, 0)
	}
}

func TestPyTorchCorrupt(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(ptbin, "tensors.bin"))
	if err != nil {
		t.Fatal(err)
	}
	legacy, _ := os.ReadFile(filepath.Join(ptbin, "legacy.bin"))
	ver := zent{"m/version", []byte("3\n")}
	data6 := zent{"m/data/0", f32bytes(1, 2, 3, 4, 5, 6)}
	w := func(typ string, numel, off int64, size, stride []int64) []byte {
		return stateDict(func(p *pk) { p.str("w").tensor(typ, "0", numel, off, size, stride) })
	}
	type tc struct {
		ents []zent // a zip, or
		raw  []byte // a raw file
		want string // in the error
	}
	cases := map[string]tc{
		"forbidden global": {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).global("os", "system").str("ls").op(0x85, 'R', '.').Bytes()}, ver},
			want: "global os.system is not allowed"},
		"forbidden global in a tensor": {ents: []zent{{"m/data.pkl", stateDict(func(p *pk) {
			p.str("w").global("builtins", "eval").str("1").op(0x85, 'R')
		})}, ver}, want: "global builtins.eval"},
		"forbidden stack global": {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 4).op(0x8c, 5).op([]byte("posix")...).op(0x8c, 6).op([]byte("system")...).op(0x93, '.').Bytes()}, ver},
			want: "global posix.system"},
		"storage too small": {ents: []zent{{"m/data.pkl", w("FloatStorage", 8, 0, []int64{8}, []int64{1})}, data6, ver}, want: "storage \"0\" holds 24 bytes"},
		"view past storage": {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 2, []int64{2, 3}, []int64{3, 1})}, data6, ver}, want: "reach element 7 of a storage of 6"},
		"huge broadcast":    {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{1 << 20, 1 << 20}, []int64{0, 0})}, data6, ver}, want: "too large to materialise"},
		"huge stride":       {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{2, 3}, []int64{1 << 30, 1})}, data6, ver}, want: "storage of 6"},
		"negative stride":   {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{2, 3}, []int64{-3, 1})}, data6, ver}, want: "negative stride"},
		"negative dim":      {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{-2, 3}, []int64{3, 1})}, data6, ver}, want: "negative dimension"},
		"negative offset":   {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, -1, []int64{2}, []int64{1})}, data6, ver}, want: "negative storage offset"},
		"rank mismatch":     {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{2, 3}, []int64{1})}, data6, ver}, want: "differ in rank"},
		"unsupported dtype": {ents: []zent{{"m/data.pkl", w("ByteStorage", 24, 0, []int64{24}, []int64{1})}, data6, ver}, want: "unsupported dtype uint8"},
		"missing storage":   {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{6}, []int64{1})}, ver}, want: "no record m/data/0"},
		"big endian":        {ents: []zent{{"m/data.pkl", w("FloatStorage", 6, 0, []int64{6}, []int64{1})}, data6, ver, {"m/byteorder", []byte("big")}}, want: "little-endian"},
		"no data.pkl":       {ents: []zent{data6, ver}, want: "without <name>/data.pkl"},
		"not a dict":        {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).op(']', '.').Bytes()}, ver}, want: "holds a list, not a state dict"},
		"training checkpoint": {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).op('}').str("epoch").int(3).op('s', '.').Bytes()}, ver},
			want: "no tensors at the top level"},
		"huge string":       {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f, 'a', '.').Bytes()}, ver}, want: "wants 2147483647 bytes"},
		"unknown memo":      {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, 'j', 0xff, 0xff, 0xff, 0xff, '.').Bytes()}, ver}, want: "memo index 4294967295"},
		"no stop":           {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, '}').Bytes()}, ver}, want: "without STOP"},
		"stack underflow":   {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, 's', '.').Bytes()}, ver}, want: "opcode SETITEM at byte 2: stack underflow"},
		"newobj":            {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).global("collections", "OrderedDict").op(')', 0x81, '.').Bytes()}, ver}, want: "opcode NEWOBJ"},
		"call a storage":    {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).global("torch", "FloatStorage").op(')', 'R', '.').Bytes()}, ver}, want: "torch.FloatStorage cannot be called"},
		"bad persistent":    {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2).str("x").op('Q', '.').Bytes()}, ver}, want: "persistent id is a str"},
		"not a storage id":  {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, '(').str("storage").global("collections", "OrderedDict").str("0").str("cpu").int(1).op('t', 'Q', '.').Bytes()}, ver}, want: "not a torch.*Storage"},
		"long int":          {ents: []zent{{"m/data.pkl", (&pk{}).op(0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.').Bytes()}, ver}, want: "does not fit 64 bits"},
		"truncated zip":     {raw: good[:len(good)-30], want: "zip archive"},
		"truncated half":    {raw: good[:len(good)/2], want: "zip archive"},
		"garbage":           {raw: []byte("hello, this is not a checkpoint"), want: "not a torch.save checkpoint"},
		"empty":             {raw: []byte{}, want: "too short"},
		"bare pickle":       {raw: []byte{0x80, 2, '}', '.'}, want: "torch.save(torch.load(p), p)"},
		"truncated legacy":  {raw: legacy[:len(legacy)-10], want: "truncated"},
		"legacy pickle cut": {raw: legacy[:200], want: "legacy format"},
	}
	for name, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".bin")
		if c.ents != nil {
			writeZip(t, p, c.ents...)
		} else {
			os.WriteFile(p, c.raw, 0o644)
		}
		f, err := OpenPyTorch(p)
		switch {
		case err == nil:
			f.Close()
			t.Errorf("%s: opened without error", name)
		case !strings.Contains(err.Error(), p):
			t.Errorf("%s: error does not name the file: %v", name, err)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		default:
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestPyTorchMutations truncates the real checkpoints at every length and
// changes their bytes one at a time: opening and loading must fail cleanly
// or succeed, never panic.
func TestPyTorchMutations(t *testing.T) {
	s := NewScope()
	defer s.Close()
	try := func(p string, b []byte) {
		// parsePyTorch is OpenPyTorch after the mmap: no file written
		f, err := parsePyTorch(p, b)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, n := range f.Names() {
			if x, err := f.Load(s, n, CPUDevice, -1); err == nil {
				x.Free()
			}
		}
		f.Close()
	}
	for _, name := range []string{"tensors.bin", "legacy.bin", "deflate.bin"} {
		good, err := os.ReadFile(filepath.Join(ptbin, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("mutated", name)
		for n := 0; n < len(good); n++ {
			try(p, good[:n])
		}
		// every byte of the pickles and headers (the first 1500 bytes:
		// data.pkl comes first in torch's archives), every 5th of the rest,
		// set to 0xff or with its low bit flipped, in turn
		b := append([]byte(nil), good...)
		for i := 0; i < len(b); i++ {
			if (i >= 1500 || testing.Short()) && i%5 != 0 {
				continue
			}
			old := b[i]
			if b[i] = 0xff; i%2 == 1 {
				b[i] = old ^ 0x01
			}
			try(p, b)
			b[i] = old
		}
	}
}

// TestPyTorchDeflateBomb: a compressed record claiming far more bytes than
// deflate can produce is rejected before anything is allocated.
func TestPyTorchDeflateBomb(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bomb.bin")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "m/data.pkl", Method: zip.Store})
	w.Write(stateDict(func(p *pk) { p.str("w").tensor("FloatStorage", "0", 1<<28, 0, []int64{1 << 28}, []int64{1}) }))
	w, _ = zw.CreateRaw(&zip.FileHeader{Name: "m/data/0", Method: zip.Deflate, CompressedSize64: 2, UncompressedSize64: 1 << 30})
	w.Write([]byte{0x03, 0x00})
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, buf.Bytes(), 0o644)
	if _, err := OpenPyTorch(p); err == nil || !strings.Contains(err.Error(), "claims 1073741824 bytes from 2 compressed") {
		t.Fatalf("deflate bomb: %v", err)
	}
}

// TestPickleAmplification: OrderedDict(list) of one memoised list, repeated,
// would copy quadratically much; the unpickler stops it.
func TestPickleAmplification(t *testing.T) {
	p := &pk{}
	p.op(0x80, 2, ']', 'q', 0, '(')
	for i := 0; i < 1000; i++ {
		p.op('N', 'N', 0x86)
	}
	p.op('e').global("collections", "OrderedDict").op('q', 1)
	for i := 0; i < 3000; i++ {
		p.op('h', 1, 'h', 0, 0x85, 'R', '0')
	}
	p.op('.')
	_, _, err := unpickle(p.Bytes(), 0, nil)
	if err == nil || !strings.Contains(err.Error(), "exhaust memory") {
		t.Fatalf("amplification: %v", err)
	}
	// a few of them are fine
	q := &pk{}
	q.op(0x80, 2, ']', 'q', 0, '(')
	for i := 0; i < 1000; i++ {
		q.op('N', 'N', 0x86)
	}
	q.op('e').global("collections", "OrderedDict").op('q', 1)
	for i := 0; i < 10; i++ {
		q.op('h', 1, 'h', 0, 0x85, 'R', '0')
	}
	q.op('0', '.') // pop the global: the list is the result
	if v, _, err := unpickle(q.Bytes(), 0, nil); err != nil || len(v.(*pyList).items) != 1000 {
		t.Fatalf("ten OrderedDicts: %v", err)
	}
}
