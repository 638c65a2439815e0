package dense

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// npyFile is a .npy file of format version major with the given header
// dict and values of width bytes.
func npyFile(major byte, dict string, width int, vals []float64) []byte {
	lenBytes := 2
	if major > 1 {
		lenBytes = 4
	}
	total := 8 + lenBytes + len(dict) + 1
	dict += strings.Repeat(" ", (64-total%64)%64) + "\n"
	b := append([]byte(npyMagic), major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	b = append(b, dict...)
	for _, v := range vals {
		switch width {
		case 2:
			b = binary.LittleEndian.AppendUint16(b, f32ToF16(float32(v)))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		default:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return b
}

func TestVectorFileNPY(t *testing.T) {
	dir := t.TempDir()
	ids := filepath.Join(dir, "ids")
	os.WriteFile(ids, []byte("a\nb\nc\n"), 0o644)
	vals := []float64{1, 2, 3, 4, 5, 6, -0.5, 0.25, 7, 8, 9, 10}
	want := [][]float32{{1, 2, 3, 4}, {5, 6, -0.5, 0.25}, {7, 8, 9, 10}}
	for _, c := range []struct {
		name  string
		major byte
		descr string
		width int
	}{{"f4", 1, "<f4", 4}, {"f2", 1, "<f2", 2}, {"f8 v2", 2, "<f8", 8}, {"f4 v3", 3, "<f4", 4}} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".npy")
			os.WriteFile(p, npyFile(c.major, fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (3, 4), }", c.descr), c.width, vals), 0o644)
			v, err := OpenVectorFile(p, ids)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if v.Rows() != 3 || v.Dim() != 4 {
				t.Fatalf("%d×%d", v.Rows(), v.Dim())
			}
			got := make([]float32, 4)
			for i, id := range []string{"a", "b", "c"} {
				if i == 0 {
					if err := v.Skip(1); err != nil {
						t.Fatal(err)
					}
					continue
				}
				gid, err := v.Next(got)
				if err != nil || gid != id || fmt.Sprint(got) != fmt.Sprint(want[i]) {
					t.Fatalf("row %d: %q %v %v", i, gid, got, err)
				}
			}
			if _, err := v.Next(got); err != io.EOF {
				t.Fatalf("after the last row: %v", err)
			}
			var seen []string
			if err := v.ScanIDs(context.Background(), func(_ int, id string) error { seen = append(seen, id); return nil }); err != nil || strings.Join(seen, ",") != "a,b,c" {
				t.Fatalf("ScanIDs %v %v", seen, err)
			}
		})
	}
	// NPYHeader is a format 1.0 header numpy reads: 64-byte aligned.
	h := NPYHeader(3, 4)
	if len(h)%64 != 0 || h[len(h)-1] != '\n' {
		t.Fatalf("header of %d bytes", len(h))
	}
	p := filepath.Join(dir, "own.npy")
	os.WriteFile(p, append(h, npyFile(1, "", 4, vals)[64:]...), 0o644)
	if v, err := OpenVectorFile(p, ids); err != nil || v.Rows() != 3 || v.Dim() != 4 {
		t.Fatalf("NPYHeader: %v", err)
	} else {
		v.Close()
	}

	for _, c := range []struct{ dict, want string }{
		{"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", "dtype \">f4\""},
		{"{'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }", "dtype \"<i8\""},
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", "Fortran-order"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", "shape [12]"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", "176 bytes, want 192 for 4×4"},
	} {
		p := filepath.Join(dir, "bad.npy")
		os.WriteFile(p, npyFile(1, c.dict, 4, vals), 0o644)
		if _, err := OpenVectorFile(p, ids); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.dict, err, c.want)
		}
	}
}

func TestVectorFileJSONLines(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, "\xef\xbb\xbf{\"id\": \"x\", \"vector\": [1, 2]}\n\n{\"id\": 17, \"vector\": [3, 4.5]}\n")
	zw.Close()
	p := filepath.Join(t.TempDir(), "v.jsonl.gz")
	os.WriteFile(p, b.Bytes(), 0o644)
	v, err := OpenVectorFile(p, "")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Dim() != 2 || v.Rows() != -1 {
		t.Fatalf("dim %d rows %d", v.Dim(), v.Rows())
	}
	got := make([]float32, 2)
	for _, want := range []string{"x [1 2]", "17 [3 4.5]"} {
		id, err := v.Next(got)
		if err != nil || fmt.Sprint(id, " ", got) != want {
			t.Fatalf("%q %v %v, want %s", id, got, err, want)
		}
	}
	if _, err := v.Next(got); err != io.EOF {
		t.Fatalf("after the last line: %v", err)
	}
}
