// Package demo builds re2g's demonstration: a real corpus found on every
// machine that builds re2g — the documentation of the Go toolchain's
// packages and their exported functions — with questions made from it, and
// the steps that index it, train small models on it and answer from it.
package demo

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/re2g/re2g/data"
)

// QA is one question with its answers and gold passage.
type QA struct {
	ID        string
	Question  string
	Answers   []string
	PassageID string
	Package   string
}

// Corpus is the Go documentation as passages, with questions about it.
type Corpus struct {
	Passages []data.Passage
	QA       []QA
}

var skipDir = map[string]bool{"testdata": true, "internal": true, "vendor": true}

// Build reads the package documentation under goroot/src: one passage per
// package doc paragraph group and per documented exported function; one
// question per package synopsis ("Which Go package implements …?") and per
// function doc ("Which function of package P reports whether …?").
func Build(goroot string) (*Corpus, error) {
	src := filepath.Join(goroot, "src")
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("go documentation: %w", err)
	}
	c := &Corpus{}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if skipDir[d.Name()] || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(src, path)
		if rel == "." || strings.HasPrefix(rel, "cmd/vendor") || strings.HasPrefix(rel, "vendor") {
			return nil
		}
		c.addPackage(path, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.Passages) == 0 {
		return nil, fmt.Errorf("go documentation: no documented packages under %s", src)
	}
	return c, nil
}

func (c *Corpus) addPackage(dir, importPath string) {
	bp, err := build.Default.ImportDir(dir, 0)
	if err != nil || len(bp.GoFiles) == 0 {
		return
	}
	name := bp.Name
	fset := token.NewFileSet()
	var files []*ast.File
	for _, f := range bp.GoFiles {
		af, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.ParseComments)
		if err != nil {
			return
		}
		files = append(files, af)
	}
	dp, err := doc.NewFromFiles(fset, files, importPath)
	if err != nil || strings.TrimSpace(dp.Doc) == "" {
		return
	}
	text := plain(dp, dp.Doc)
	paras := splitParas(text)
	if len(paras) == 0 {
		return
	}
	title := importPath
	// the package documentation, in passages of about 120 words
	var cur []string
	words, n := 0, 0
	flush := func() {
		if len(cur) == 0 {
			return
		}
		c.Passages = append(c.Passages, data.Passage{ID: fmt.Sprintf("%s#%d", importPath, n), Title: title, Text: strings.Join(cur, " ")})
		n++
		cur, words = nil, 0
	}
	for _, p := range paras {
		cur = append(cur, p)
		words += len(strings.Fields(p))
		if words >= 120 {
			flush()
		}
	}
	flush()
	if q, ok := synopsisQuestion(name, importPath, dp.Synopsis(dp.Doc)); ok {
		c.QA = append(c.QA, QA{ID: importPath, Question: q, Answers: []string{importPath}, PassageID: importPath + "#0", Package: importPath})
	}
	if name == "main" {
		return
	}
	// documented exported functions (and methods' receivers are skipped: their names repeat)
	funcs := append([]*doc.Func(nil), dp.Funcs...)
	for _, t := range dp.Types {
		funcs = append(funcs, t.Funcs...)
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].Name < funcs[j].Name })
	for _, f := range funcs {
		fd := strings.TrimSpace(plain(dp, f.Doc))
		if fd == "" || !ast.IsExported(f.Name) {
			continue
		}
		id := fmt.Sprintf("%s.%s", importPath, f.Name)
		ftext := strings.Join(splitParas(fd), " ")
		c.Passages = append(c.Passages, data.Passage{ID: id, Title: importPath + "." + f.Name, Text: ftext})
		if q, ok := funcQuestion(f.Name, importPath, dp.Synopsis(fd)); ok {
			c.QA = append(c.QA, QA{ID: id, Question: q, Answers: []string{f.Name}, PassageID: id, Package: importPath})
		}
	}
}

func plain(dp *doc.Package, s string) string {
	return string(dp.Text(s))
}

func splitParas(s string) []string {
	var out []string
	for _, p := range regexp.MustCompile(`\n\s*\n`).Split(s, -1) {
		p = strings.Join(strings.Fields(p), " ")
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// synopsisQuestion turns "Package strings implements simple functions…"
// (or "Gofmt formats Go programs.") into a question whose answer is the
// import path.
func synopsisQuestion(name, importPath, syn string) (string, bool) {
	syn = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(syn), "."))
	words := strings.Fields(syn)
	if len(words) < 4 {
		return "", false
	}
	kind := "Go package"
	rest := ""
	switch {
	case strings.EqualFold(words[0], "package") && len(words) > 2:
		rest = strings.Join(words[2:], " ")
	case name == "main" && strings.EqualFold(words[0], filepath.Base(importPath)):
		kind = "Go command"
		rest = strings.Join(words[1:], " ")
	default:
		return "", false
	}
	verb := strings.Fields(rest)[0]
	if !isVerb(verb) {
		return "", false
	}
	return fmt.Sprintf("Which %s %s?", kind, lowerFirst(rest)), true
}

// funcQuestion turns "Contains reports whether substr is within s." into
// "Which function of package strings reports whether substr is within s?".
func funcQuestion(name, importPath, syn string) (string, bool) {
	syn = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(syn), "."))
	words := strings.Fields(syn)
	if len(words) < 4 || words[0] != name || !isVerb(words[1]) {
		return "", false
	}
	return fmt.Sprintf("Which function of package %s %s?", importPath, strings.Join(words[1:], " ")), true
}

func isVerb(w string) bool {
	if w == "" || !unicode.IsLower(rune(w[0])) {
		return false
	}
	return strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss")
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// Split puts a question in the held-out set when the FNV hash of its
// package, with seed, falls in the first devPercent of 100 buckets: no
// held-out package's questions are seen in training.
func Split(qa []QA, devPercent int, seed string) (train, dev []QA) {
	for _, q := range qa {
		h := fnv.New32a()
		h.Write([]byte(seed))
		h.Write([]byte(q.Package))
		if int(h.Sum32()%100) < devPercent {
			dev = append(dev, q)
		} else {
			train = append(train, q)
		}
	}
	return train, dev
}
