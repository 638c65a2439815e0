package bom

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf16"
)

func utf16Bytes(s string, big bool) []byte {
	var b []byte
	if big {
		b = append(b, 0xfe, 0xff)
	} else {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if big {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

func TestMarks(t *testing.T) {
	const text = "{\"_id\": \"d1\", \"text\": \"caf\u00e9 \U0001F600\"}\n{\"_id\": \"d2\"}\n"
	for name, in := range map[string][]byte{
		"none":     []byte(text),
		"utf-8":    append([]byte{0xef, 0xbb, 0xbf}, text...),
		"utf-16le": utf16Bytes(text, false),
		"utf-16be": utf16Bytes(text, true),
	} {
		got, err := io.ReadAll(Reader(bytes.NewReader(in)))
		if err != nil || string(got) != text {
			t.Errorf("Reader, %s: %q, %v", name, got, err)
		}
		got, err = Bytes(in)
		if err != nil || string(got) != text {
			t.Errorf("Bytes, %s: %q, %v", name, got, err)
		}
	}
	// only a leading mark goes; short inputs are left alone
	for _, in := range []string{"", "{", "\xef\xbb", "a\xef\xbb\xbfb", "\xef\xbb\xbf"} {
		want := strings.TrimPrefix(in, "\xef\xbb\xbf")
		got, err := io.ReadAll(Reader(strings.NewReader(in)))
		if err != nil || string(got) != want {
			t.Errorf("Reader(%q) = %q, %v; want %q", in, got, err, want)
		}
		if b, _ := Bytes([]byte(in)); string(b) != want {
			t.Errorf("Bytes(%q) = %q; want %q", in, b, want)
		}
	}
}
