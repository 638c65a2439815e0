// Command bench_tokenizer measures tokenizer throughput of the Go tokenizers
// against Hugging Face tokenizers (Rust, through its node bindings, or
// through its Python bindings with -python) on the same texts, one thread
// and all threads, and prints a table and the ratio.
//
//	go run ./scripts/bench_tokenizer [-data ../shared/data] [-node-modules DIR | -python python3] [-rounds 3]
//
// Without -node-modules (a folder holding the npm package tokenizers) or
// -python (a python that imports tokenizers) only the Go side is measured.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/tokenizer"
)

func main() {
	data := flag.String("data", "../shared/data", "shared data folder")
	nodeModules := flag.String("node-modules", "", "folder with the npm package tokenizers (empty: Go only)")
	python := flag.String("python", "", "python with the tokenizers package, used instead of node (empty: node)")
	rounds := flag.Int("rounds", 3, "timed rounds per measurement (best is kept)")
	flag.Parse()

	texts, err := loadTexts(filepath.Join(*data, "squadshifts/new_wiki_v1.0.json"))
	if err != nil {
		log.Fatal(err)
	}
	textsPath := filepath.Join(os.TempDir(), fmt.Sprintf("bench_tokenizer_texts_%d.json", os.Getpid()))
	b, _ := json.Marshal(texts)
	if err := os.WriteFile(textsPath, b, 0o644); err != nil {
		log.Fatal(err)
	}
	defer os.Remove(textsPath)
	var bytes int
	for _, t := range texts {
		bytes += len(t)
	}
	cores := runtime.NumCPU()
	fmt.Printf("texts: %d SQuADShifts passages and questions, %.1f MB; %d cores\n\n", len(texts), float64(bytes)/1e6, cores)

	type row struct {
		name    string
		threads int
		goTPS   float64
		hfTPS   float64
	}
	var rows []row
	tokDir := filepath.Join(*data, "tokenizers")
	for _, c := range []struct{ name, path string }{
		{"bert-base-uncased", filepath.Join(tokDir, "bert-base-uncased/tokenizer.json")},
		{"gpt2", filepath.Join(tokDir, "gpt2-bpe")},
	} {
		tok, err := tokenizer.Load(c.path)
		if err != nil {
			log.Fatal(err)
		}
		inputs := make([]tokenizer.Input, len(texts))
		for i, t := range texts {
			inputs[i] = tokenizer.Input{A: t}
		}
		for _, threads := range []int{1, cores} {
			prev := runtime.GOMAXPROCS(threads)
			best := math.Inf(1)
			var tokens int
			for r := 0; r < *rounds+1; r++ { // first round warms up
				start := time.Now()
				encs, err := tok.EncodeBatch(context.Background(), inputs, tokenizer.Options{})
				if err != nil {
					log.Fatal(err)
				}
				d := time.Since(start).Seconds()
				if r > 0 && d < best {
					best = d
				}
				tokens = 0
				for _, e := range encs {
					tokens += len(e.IDs)
				}
			}
			runtime.GOMAXPROCS(prev)
			rw := row{name: c.name, threads: threads, goTPS: float64(tokens) / best}
			if *nodeModules != "" || *python != "" {
				var hfTokens int
				rw.hfTPS, hfTokens, err = runHF(*nodeModules, *python, c.name, c.path, textsPath, threads, *rounds)
				if err != nil {
					log.Fatalf("hf tokenizers: %v", err)
				}
				if hfTokens != tokens {
					log.Fatalf("%s: HF made %d tokens, Go %d: not the same work", c.name, hfTokens, tokens)
				}
			}
			rows = append(rows, rw)
		}
	}
	switch {
	case *python != "":
		fmt.Printf("hf: tokenizers' Python bindings (%s)\n", *python)
	case *nodeModules != "":
		fmt.Printf("hf: tokenizers' node bindings (%s)\n", *nodeModules)
	}
	fmt.Printf("%-18s %7s %14s %14s %8s\n", "tokenizer", "threads", "go tokens/s", "hf tokens/s", "go/hf")
	ratio := math.Inf(1)
	for _, r := range rows {
		rs := "-"
		if r.hfTPS > 0 {
			q := r.goTPS / r.hfTPS
			ratio = math.Min(ratio, q)
			rs = fmt.Sprintf("%.2f", q)
		}
		fmt.Printf("%-18s %7d %14.0f %14.0f %8s\n", r.name, r.threads, r.goTPS, r.hfTPS, rs)
	}
	if !math.IsInf(ratio, 1) {
		fmt.Printf("\ngo/hf tokenizer throughput ratio: %.2f (lowest row)\n", ratio)
	}
}

// runHF times HF tokenizers' batch encoding in a node process (or, with
// python set, a Python one) limited to threads rayon threads and returns its
// tokens per second and token count.
func runHF(nodeModules, python, name, tokPath, textsPath string, threads, rounds int) (float64, int, error) {
	prog, script := "node", "scripts/bench_tokenizer/hf.js"
	if python != "" {
		prog, script = python, "scripts/bench_tokenizer/hf.py"
	}
	script, err := filepath.Abs(script)
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(prog, script, name, tokPath, textsPath, fmt.Sprint(rounds))
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules, fmt.Sprintf("RAYON_NUM_THREADS=%d", threads),
		fmt.Sprintf("UV_THREADPOOL_SIZE=%d", max(threads, 1)), "TOKENIZERS_PARALLELISM=true")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, err
	}
	var tps float64
	var tokens int
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &tps, &tokens); err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", out, err)
	}
	return tps, tokens, nil
}

// loadTexts returns every paragraph and every question of a SQuAD file.
func loadTexts(path string) ([]string, error) {
	sq, err := data.LoadSQuAD(path, nil)
	if err != nil {
		return nil, err
	}
	texts := make([]string, 0, len(sq.Passages)+len(sq.Questions))
	for _, p := range sq.Passages {
		texts = append(texts, p.Text)
	}
	for _, q := range sq.Questions {
		texts = append(texts, q.Question)
	}
	return texts, nil
}
