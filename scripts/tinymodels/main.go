// Command tinymodels writes re2g's small random models (DPR question and
// context encoders, a cross-encoder, BART; internal/tinymodels) with the
// bert-base-uncased tokenizer, for benchmarks that need the real model code
// but not trained weights:
//
//	go run ./scripts/tinymodels -size small -out build/models
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/re2g/re2g/internal/tinymodels"
)

func main() {
	size := flag.String("size", "small", "tiny (BERT 32×2) or small (BERT 128×2)")
	out := flag.String("out", "", "directory to write the models under (required)")
	tok := flag.String("tokenizer", "../shared/data/tokenizers/bert-base-uncased/tokenizer.json", "bert-base-uncased tokenizer.json")
	seed := flag.Uint64("seed", 7, "seed of the weights")
	flag.Parse()
	if err := run(*size, *out, *tok, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "tinymodels:", err)
		os.Exit(1)
	}
}

func run(size, out, tokPath string, seed uint64) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	sz, err := tinymodels.ParseSize(size)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(tokPath)
	if err != nil {
		return err
	}
	d, err := tinymodels.Write(out, tok, sz, seed)
	if err != nil {
		return err
	}
	fmt.Printf("query encoder %s\ncontext encoder %s\nreranker %s\ngenerator %s\n", d.QueryEncoder, d.CtxEncoder, d.Reranker, d.Generator)
	return nil
}
