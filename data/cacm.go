package data

import (
	"archive/tar"
	"errors"
	"fmt"
	"html"
	"io"
	"path"
	"regexp"
	"strings"
)

var htmlTagRE = regexp.MustCompile(`(?s)<[^>]*>`)

// LoadCACM reads the CACM tarball (cacm.tar.gz): each .html member is one
// document whose id is the file name stem (CACM-1410) and whose text is the
// file's text with the markup removed and white space collapsed, as
// Anserini's HtmlCollection indexes it. Members that are not regular .html
// files are skipped and reported; a document with no text is malformed.
func LoadCACM(file string, rep *Report) ([]Passage, error) {
	f, err := Open(file)
	if err != nil {
		return nil, fmt.Errorf("cacm: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var out []Passage
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cacm: %s: member %d: %w", file, n+1, err)
		}
		n++
		if h.Typeflag == tar.TypeDir {
			continue
		}
		name := path.Base(h.Name)
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(name, ".html") {
			if err := rep.skip(file, n, "member %s is not an .html file", h.Name); err != nil {
				return nil, err
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("cacm: %s: %s: %w", file, h.Name, err)
		}
		text := strings.Join(strings.Fields(html.UnescapeString(htmlTagRE.ReplaceAllString(string(b), " "))), " ")
		if text == "" {
			if err := rep.skip(file, n, "member %s has no text", h.Name); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, Passage{ID: strings.TrimSuffix(name, ".html"), Text: text})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cacm: %s: no .html documents", file)
	}
	return out, nil
}
