// Package bom reads text files that begin with a byte order mark as the text
// they hold: editors such as Windows Notepad and Excel ("CSV UTF-8") start
// files with one. A UTF-8 mark is dropped; a UTF-16 mark (little or big
// endian) decodes the file to UTF-8 (golang.org/x/text's BOMOverride). Text
// without a mark is passed through untouched. Every reader of user files
// (JSON lines, JSON, TSV, CSV, configs) goes through Reader or Bytes, so
// that a mark is handled the same way everywhere.
package bom

import (
	"bufio"
	"bytes"
	"io"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

var (
	utf8Mark    = []byte{0xef, 0xbb, 0xbf}
	utf16LEMark = []byte{0xff, 0xfe}
	utf16BEMark = []byte{0xfe, 0xff}
)

// Reader returns r without a leading byte order mark (UTF-16 text decoded
// to UTF-8). It buffers r unless r is a *bufio.Reader already.
func Reader(r io.Reader) io.Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	head, _ := br.Peek(3) // a short or failed peek: the reads that follow report it
	switch {
	case bytes.HasPrefix(head, utf8Mark):
		br.Discard(len(utf8Mark))
	case bytes.HasPrefix(head, utf16LEMark) || bytes.HasPrefix(head, utf16BEMark):
		return transform.NewReader(br, unicode.BOMOverride(transform.Nop))
	}
	return br
}

// Bytes returns b without a leading byte order mark (UTF-16 text decoded to
// UTF-8); b itself when it has none.
func Bytes(b []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(b, utf8Mark):
		return b[len(utf8Mark):], nil
	case bytes.HasPrefix(b, utf16LEMark) || bytes.HasPrefix(b, utf16BEMark):
		out, _, err := transform.Bytes(unicode.BOMOverride(transform.Nop), b)
		return out, err
	}
	return b, nil
}
