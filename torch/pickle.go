package torch

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A restricted unpickler for the data.pkl of a torch.save checkpoint: the
// opcodes of pickle protocols 0-5 that a state dict uses, and only the
// globals a state dict needs (see allowedGlobal). It builds plain Go values
// and never calls anything: a REDUCE of an allowed global is interpreted
// here (OrderedDict() makes a dict, _rebuild_tensor_v2 records a tensor
// view), every other global is an error naming it. Memory is linear in the
// pickle's size, which the caller bounds: every value pushed costs at least
// one byte of input, and lengths are checked against the bytes left.

// pyGlobal is a class or function named by GLOBAL / STACK_GLOBAL.
type pyGlobal struct{ module, name string }

func (g pyGlobal) String() string { return g.module + "." + g.name }

type pyTuple []any

type pyList struct{ items []any }

// pyDict keeps insertion order; keys must be hashable scalars.
type pyDict struct {
	keys []any
	vals map[any]any
}

func newDict() *pyDict { return &pyDict{vals: map[any]any{}} }

func (d *pyDict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, nil, float64:
	default:
		return fmt.Errorf("dict key of type %s is not supported", pyType(k))
	}
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
	return nil
}

// pyMark is the MARK sentinel on the stack.
type pyMark struct{}

// ptStorageRef is a persistent id ('storage', type, key, location, numel).
type ptStorageRef struct {
	typ      string // e.g. FloatStorage
	key      string
	location string
	numel    int64
}

// ptTensorRef is a tensor rebuilt by _rebuild_tensor_v2.
type ptTensorRef struct {
	storage *ptStorageRef
	offset  int64
	size    []int64
	stride  []int64
}

// pyType names a value's type for error messages (never its contents, which
// may be cyclic or huge).
func pyType(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return fmt.Sprintf("tuple of %d", len(v))
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case pyGlobal:
		return v.String()
	case *ptStorageRef:
		return "storage"
	case *ptTensorRef:
		return "tensor"
	case pyMark:
		return "mark"
	}
	return fmt.Sprintf("%T", v)
}

// storageDTypes maps torch.*Storage to dtypes re2g loads; other storage
// types (ByteStorage, ...) unpickle but their tensors are rejected.
var storageDTypes = map[string]DType{
	"FloatStorage": Float32, "HalfStorage": Float16, "BFloat16Storage": BFloat16, "DoubleStorage": Float64,
	"LongStorage": Int64, "IntStorage": Int32, "BoolStorage": Bool,
}

var otherStorages = map[string]string{
	"ByteStorage": "uint8", "CharStorage": "int8", "ShortStorage": "int16",
	"ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
	"QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
}

var torchDTypeNames = map[string]bool{
	"float32": true, "float": true, "float16": true, "half": true, "bfloat16": true, "float64": true,
	"double": true, "int64": true, "long": true, "int32": true, "int": true, "bool": true, "uint8": true,
	"int8": true, "int16": true, "short": true,
}

// allowedGlobal reports whether a state dict may name module.name.
func allowedGlobal(module, name string) bool {
	switch module {
	case "collections":
		return name == "OrderedDict"
	case "torch._utils":
		return name == "_rebuild_tensor_v2" || name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state"
	case "torch":
		_, a := storageDTypes[name]
		_, b := otherStorages[name]
		return a || b || torchDTypeNames[name]
	}
	return false
}

// unpickler state.
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[int64]any
	work  int // elements copied by REDUCE, bounded by workLimit
	// persistent resolves a persistent id; nil means BINPERSID is an error.
	persistent func(pid any) (any, error)
}

var opNames = map[byte]string{
	0x80: "PROTO", 0x95: "FRAME", '.': "STOP", '(': "MARK", '0': "POP", '1': "POP_MARK", '2': "DUP",
	'N': "NONE", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 'J': "BININT", 'K': "BININT1", 'M': "BININT2",
	0x8a: "LONG1", 0x8b: "LONG4", 'I': "INT", 'L': "LONG", 'F': "FLOAT", 'G': "BINFLOAT",
	'X': "BINUNICODE", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8", 'T': "BINSTRING", 'U': "SHORT_BINSTRING",
	'B': "BINBYTES", 'C': "SHORT_BINBYTES", 0x8e: "BINBYTES8", ')': "EMPTY_TUPLE", 't': "TUPLE",
	0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3", ']': "EMPTY_LIST", 'l': "LIST", 'a': "APPEND",
	'e': "APPENDS", '}': "EMPTY_DICT", 'd': "DICT", 's': "SETITEM", 'u': "SETITEMS", 'c': "GLOBAL",
	0x93: "STACK_GLOBAL", 'R': "REDUCE", 'b': "BUILD", 'q': "BINPUT", 'r': "LONG_BINPUT", 0x94: "MEMOIZE",
	'p': "PUT", 'h': "BINGET", 'j': "LONG_BINGET", 'g': "GET", 'Q': "BINPERSID", 'P': "PERSID",
	0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 'o': "OBJ", 'i': "INST", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS",
	0x91: "FROZENSET", 'S': "STRING", 'V': "UNICODE", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", op)
}

// pickleError says where in the pickle decoding failed.
type pickleError struct {
	pos int
	op  byte
	msg string
}

func (e *pickleError) Error() string {
	return fmt.Sprintf("pickle opcode %s at byte %d: %s", opName(e.op), e.pos, e.msg)
}

// unpickle decodes one pickle starting at data[start] and returns its value
// and the offset just past its STOP.
func unpickle(data []byte, start int, persistent func(any) (any, error)) (any, int, error) {
	u := &unpickler{data: data, pos: start, memo: map[int64]any{}, persistent: persistent}
	for {
		if u.pos >= len(u.data) {
			return nil, u.pos, fmt.Errorf("pickle ends at byte %d without STOP (truncated)", u.pos)
		}
		at := u.pos
		op := u.data[u.pos]
		u.pos++
		v, done, err := u.step(op)
		if err != nil {
			return nil, u.pos, &pickleError{pos: at, op: op, msg: err.Error()}
		}
		if done {
			return v, u.pos, nil
		}
	}
}

func (u *unpickler) take(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, fmt.Errorf("wants %d bytes, %d left (truncated or corrupt)", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) line() (string, error) {
	rest := u.data[u.pos:]
	for i, c := range rest {
		if c == '\n' {
			u.pos += i + 1
			return string(rest[:i]), nil
		}
		if i >= 1<<16 {
			break
		}
	}
	return "", fmt.Errorf("no end of line (truncated or corrupt)")
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	floor := 0
	if len(u.marks) > 0 {
		floor = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= floor {
		return nil, fmt.Errorf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	floor := 0
	if len(u.marks) > 0 {
		floor = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= floor {
		return nil, fmt.Errorf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark pops everything above the last MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, fmt.Errorf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) memoPut(idx int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if idx < 0 {
		return fmt.Errorf("negative memo index %d", idx)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) memoGet(idx int64) error {
	v, ok := u.memo[idx]
	if !ok {
		return fmt.Errorf("memo index %d was never stored", idx)
	}
	u.push(v)
	return nil
}

func (u *unpickler) global(module, name string) error {
	if !allowedGlobal(module, name) {
		return fmt.Errorf("global %s.%s is not allowed in a weights-only checkpoint (re2g loads tensors only and never runs code from a pickle)", module, name)
	}
	u.push(pyGlobal{module, name})
	return nil
}

func (u *unpickler) step(op byte) (any, bool, error) {
	switch op {
	case 0x80: // PROTO
		b, err := u.take(1)
		if err != nil {
			return nil, false, err
		}
		if b[0] > 5 {
			return nil, false, fmt.Errorf("unsupported pickle protocol %d", b[0])
		}
	case 0x95: // FRAME: a length hint only
		if _, err := u.take(8); err != nil {
			return nil, false, err
		}
	case '.':
		v, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		if len(u.marks) > 0 {
			return nil, false, fmt.Errorf("STOP inside a MARK")
		}
		return v, true, nil
	case '(':
		u.marks = append(u.marks, len(u.stack))
	case '0':
		if _, err := u.pop(); err != nil {
			return nil, false, err
		}
	case '1':
		if _, err := u.popMark(); err != nil {
			return nil, false, err
		}
	case '2':
		v, err := u.top()
		if err != nil {
			return nil, false, err
		}
		u.push(v)
	case 'N':
		u.push(nil)
	case 0x88:
		u.push(true)
	case 0x89:
		u.push(false)
	case 'J':
		b, err := u.take(4)
		if err != nil {
			return nil, false, err
		}
		u.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case 'K':
		b, err := u.take(1)
		if err != nil {
			return nil, false, err
		}
		u.push(int64(b[0]))
	case 'M':
		b, err := u.take(2)
		if err != nil {
			return nil, false, err
		}
		u.push(int64(binary.LittleEndian.Uint16(b)))
	case 0x8a, 0x8b: // LONG1, LONG4: little-endian two's complement
		var n uint64
		if op == 0x8a {
			b, err := u.take(1)
			if err != nil {
				return nil, false, err
			}
			n = uint64(b[0])
		} else {
			b, err := u.take(4)
			if err != nil {
				return nil, false, err
			}
			n = uint64(binary.LittleEndian.Uint32(b))
		}
		b, err := u.take(n)
		if err != nil {
			return nil, false, err
		}
		v, err := longValue(b)
		if err != nil {
			return nil, false, err
		}
		u.push(v)
	case 'I', 'L': // INT, LONG (text); INT 00/01 are False/True
		s, err := u.line()
		if err != nil {
			return nil, false, err
		}
		if op == 'I' && (s == "00" || s == "01") {
			u.push(s == "01")
			break
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(s, "L"), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("integer %q: %v", s, err)
		}
		u.push(v)
	case 'F':
		s, err := u.line()
		if err != nil {
			return nil, false, err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, false, fmt.Errorf("float %q: %v", s, err)
		}
		u.push(v)
	case 'G':
		b, err := u.take(8)
		if err != nil {
			return nil, false, err
		}
		u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes with a length prefix
		var lenBytes int
		switch op {
		case 0x8c, 'U', 'C':
			lenBytes = 1
		case 'X', 'T', 'B':
			lenBytes = 4
		default:
			lenBytes = 8
		}
		lb, err := u.take(uint64(lenBytes))
		if err != nil {
			return nil, false, err
		}
		var n uint64
		switch lenBytes {
		case 1:
			n = uint64(lb[0])
		case 4:
			n = uint64(binary.LittleEndian.Uint32(lb))
		default:
			n = binary.LittleEndian.Uint64(lb)
		}
		b, err := u.take(n)
		if err != nil {
			return nil, false, err
		}
		if op == 'B' || op == 'C' || op == 0x8e {
			u.push(append([]byte(nil), b...))
		} else {
			u.push(string(b))
		}
	case ')':
		u.push(pyTuple{})
	case 't':
		items, err := u.popMark()
		if err != nil {
			return nil, false, err
		}
		u.push(pyTuple(items))
	case 0x85, 0x86, 0x87:
		n := int(op-0x85) + 1
		items := make(pyTuple, n)
		for i := n - 1; i >= 0; i-- {
			v, err := u.pop()
			if err != nil {
				return nil, false, err
			}
			items[i] = v
		}
		u.push(items)
	case ']':
		u.push(&pyList{})
	case 'l':
		items, err := u.popMark()
		if err != nil {
			return nil, false, err
		}
		u.push(&pyList{items: items})
	case 'a', 'e':
		var items []any
		if op == 'a' {
			v, err := u.pop()
			if err != nil {
				return nil, false, err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return nil, false, err
			}
		}
		t, err := u.top()
		if err != nil {
			return nil, false, err
		}
		l, ok := t.(*pyList)
		if !ok {
			return nil, false, fmt.Errorf("appending to a %s, not a list", pyType(t))
		}
		l.items = append(l.items, items...)
	case '}':
		u.push(newDict())
	case 'd', 's', 'u':
		var items []any
		switch op {
		case 's':
			v, err := u.pop()
			if err != nil {
				return nil, false, err
			}
			k, err := u.pop()
			if err != nil {
				return nil, false, err
			}
			items = []any{k, v}
		default:
			var err error
			if items, err = u.popMark(); err != nil {
				return nil, false, err
			}
		}
		if len(items)%2 != 0 {
			return nil, false, fmt.Errorf("odd number of items (%d) for a dict", len(items))
		}
		var d *pyDict
		if op == 'd' {
			d = newDict()
			u.push(d)
		} else {
			t, err := u.top()
			if err != nil {
				return nil, false, err
			}
			var ok bool
			if d, ok = t.(*pyDict); !ok {
				return nil, false, fmt.Errorf("setting an item of a %s, not a dict", pyType(t))
			}
		}
		for i := 0; i < len(items); i += 2 {
			if err := d.set(items[i], items[i+1]); err != nil {
				return nil, false, err
			}
		}
	case 'c':
		module, err := u.line()
		if err != nil {
			return nil, false, err
		}
		name, err := u.line()
		if err != nil {
			return nil, false, err
		}
		if err := u.global(module, name); err != nil {
			return nil, false, err
		}
	case 0x93:
		n, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		m, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		ms, ok1 := m.(string)
		ns, ok2 := n.(string)
		if !ok1 || !ok2 {
			return nil, false, fmt.Errorf("module and name are %s and %s, not strings", pyType(m), pyType(n))
		}
		if err := u.global(ms, ns); err != nil {
			return nil, false, err
		}
	case 'R':
		args, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		fn, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		v, err := u.reduce(fn, args)
		if err != nil {
			return nil, false, err
		}
		u.push(v)
	case 'b':
		state, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		t, err := u.top()
		if err != nil {
			return nil, false, err
		}
		switch t.(type) {
		case *pyDict, *ptTensorRef:
			// An OrderedDict's attributes (state_dict()'s _metadata) and a
			// tensor's Python attributes carry no weights: ignored.
			_ = state
		default:
			return nil, false, fmt.Errorf("BUILD of a %s is not supported", pyType(t))
		}
	case 'q', 'r', 'p':
		idx, err := u.memoIndex(op, 'q', 'r')
		if err != nil {
			return nil, false, err
		}
		if err := u.memoPut(idx); err != nil {
			return nil, false, err
		}
	case 0x94:
		if err := u.memoPut(int64(len(u.memo))); err != nil {
			return nil, false, err
		}
	case 'h', 'j', 'g':
		idx, err := u.memoIndex(op, 'h', 'j')
		if err != nil {
			return nil, false, err
		}
		if err := u.memoGet(idx); err != nil {
			return nil, false, err
		}
	case 'Q':
		pid, err := u.pop()
		if err != nil {
			return nil, false, err
		}
		if u.persistent == nil {
			return nil, false, fmt.Errorf("persistent id where none is expected")
		}
		v, err := u.persistent(pid)
		if err != nil {
			return nil, false, err
		}
		u.push(v)
	default:
		return nil, false, fmt.Errorf("opcode not supported in a weights-only checkpoint")
	}
	if len(u.stack) > len(u.data) {
		// cannot happen (every push consumes input), but bounds it anyway
		return nil, false, fmt.Errorf("stack larger than the pickle")
	}
	return nil, false, nil
}

// longValue decodes a LONG1/LONG4 payload that must fit an int64.
func longValue(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) > 8 {
		// allow sign-extension bytes beyond 8
		ext := byte(0)
		if b[len(b)-1]&0x80 != 0 {
			ext = 0xff
		}
		for _, c := range b[8:] {
			if c != ext {
				return 0, fmt.Errorf("integer of %d bytes does not fit 64 bits", len(b))
			}
		}
		if (b[7]&0x80 != 0) != (ext == 0xff) {
			return 0, fmt.Errorf("integer of %d bytes does not fit 64 bits", len(b))
		}
		b = b[:8]
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if n := len(b); n < 8 && b[n-1]&0x80 != 0 { // sign-extend
		v |= ^uint64(0) << (8 * uint(n))
	}
	return int64(v), nil
}

// workLimit bounds the elements REDUCE may copy: OrderedDict(list) of a
// memoised list, repeated, would otherwise grow quadratically in the input.
func (u *unpickler) workLimit() int { return 2*len(u.data) + 1<<20 }

// reduce interprets a call of an allowed global; nothing is executed.
func (u *unpickler) reduce(fn, args any) (any, error) {
	g, ok := fn.(pyGlobal)
	if !ok {
		return nil, fmt.Errorf("REDUCE of a %s, not of a global", pyType(fn))
	}
	a, ok := args.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("%s called with a %s, not a tuple", g, pyType(args))
	}
	switch g {
	case pyGlobal{"collections", "OrderedDict"}:
		d := newDict()
		if len(a) == 0 {
			return d, nil
		}
		if len(a) != 1 {
			return nil, fmt.Errorf("OrderedDict called with %d arguments", len(a))
		}
		var pairs []any
		switch p := a[0].(type) {
		case *pyList:
			pairs = p.items
		case pyTuple:
			pairs = p
		default:
			return nil, fmt.Errorf("OrderedDict of a %s", pyType(a[0]))
		}
		if u.work += len(pairs); u.work > u.workLimit() {
			return nil, fmt.Errorf("OrderedDict items copied exceed %d: a pickle built to exhaust memory?", u.workLimit())
		}
		for _, p := range pairs {
			kv, ok := p.(pyTuple)
			if !ok || len(kv) != 2 {
				return nil, fmt.Errorf("OrderedDict item is a %s, not a pair", pyType(p))
			}
			if err := d.set(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		return d, nil
	case pyGlobal{"torch._utils", "_rebuild_tensor_v2"}:
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
		if len(a) != 6 && len(a) != 7 {
			return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments, want 6 or 7", len(a))
		}
		st, ok := a[0].(*ptStorageRef)
		if !ok {
			return nil, fmt.Errorf("_rebuild_tensor_v2 of a %s, not a storage", pyType(a[0]))
		}
		off, ok := a[1].(int64)
		if !ok {
			return nil, fmt.Errorf("_rebuild_tensor_v2: storage offset is a %s", pyType(a[1]))
		}
		if u.work += 2 * maxDims; u.work > u.workLimit() {
			return nil, fmt.Errorf("tensors rebuilt exceed the pickle's size: a pickle built to exhaust memory?")
		}
		size, err := intTuple("size", a[2])
		if err != nil {
			return nil, err
		}
		stride, err := intTuple("stride", a[3])
		if err != nil {
			return nil, err
		}
		return &ptTensorRef{storage: st, offset: off, size: size, stride: stride}, nil
	case pyGlobal{"torch._utils", "_rebuild_parameter"}, pyGlobal{"torch._utils", "_rebuild_parameter_with_state"}:
		// (data, requires_grad, backward_hooks[, state])
		if len(a) < 3 || len(a) > 4 {
			return nil, fmt.Errorf("%s with %d arguments", g.name, len(a))
		}
		t, ok := a[0].(*ptTensorRef)
		if !ok {
			return nil, fmt.Errorf("%s of a %s, not a tensor", g.name, pyType(a[0]))
		}
		return t, nil
	}
	return nil, fmt.Errorf("%s cannot be called (weights-only checkpoint)", g)
}

// maxDims bounds a tensor's rank.
const maxDims = 64

func intTuple(what string, v any) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s is a %s, not a tuple", what, pyType(v))
	}
	if len(t) > maxDims {
		return nil, fmt.Errorf("tensor %s has %d dimensions (at most %d)", what, len(t), maxDims)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("tensor %s[%d] is a %s, not an int", what, i, pyType(x))
		}
		out[i] = n
	}
	return out, nil
}

// memoIndex reads the memo index operand of a PUT or GET opcode: one byte
// (short), four little-endian bytes (long), or a decimal line (text).
func (u *unpickler) memoIndex(op, short, long byte) (int64, error) {
	switch op {
	case short:
		b, err := u.take(1)
		if err != nil {
			return 0, err
		}
		return int64(b[0]), nil
	case long:
		b, err := u.take(4)
		if err != nil {
			return 0, err
		}
		return int64(binary.LittleEndian.Uint32(b)), nil
	}
	s, err := u.line()
	if err != nil {
		return 0, err
	}
	idx, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memo index %q: %v", s, err)
	}
	return idx, nil
}
