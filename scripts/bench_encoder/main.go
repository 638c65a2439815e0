// Command bench_encoder measures BERT encoder throughput (sequences/s) of
// re2g's Go model against the same model in Python PyTorch eager on the same
// libtorch, in one run, with the same weights (a safetensors file written
// here and read there), shapes and thread count. It prints a table and the
// ratio line "go/python encoder throughput ratio: X".
//
//	go run ./scripts/bench_encoder [-layers 12 -hidden 768 -batch 64 -seq 128 -iters 3 -threads 2]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

func main() {
	layers := flag.Int("layers", 12, "encoder layers")
	hidden := flag.Int64("hidden", 768, "hidden size")
	heads := flag.Int64("heads", 12, "attention heads")
	batch := flag.Int64("batch", 64, "sequences per batch")
	seq := flag.Int64("seq", 128, "tokens per sequence")
	iters := flag.Int("iters", 3, "timed batches (after one warm-up)")
	threads := flag.Int("threads", 2, "libtorch threads, both sides")
	device := flag.String("device", "cpu", "cpu or cuda")
	dtype := flag.String("dtype", "float32", "float32, bfloat16 or float16 (cuda)")
	python := flag.String("python", "/usr/bin/python3", "python with torch")
	flag.Parse()

	torch.SetNumThreads(*threads)
	dev, err := torch.ParseDevice(*device)
	if err != nil {
		log.Fatal(err)
	}
	dt, err := torch.ParseDType(*dtype)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &bert.Config{ModelType: "bert", VocabSize: 30522, HiddenSize: *hidden, NumHiddenLayers: *layers,
		NumAttentionHeads: *heads, IntermediateSize: 4 * *hidden, HiddenAct: "gelu", MaxPositionEmbeddings: 512,
		TypeVocabSize: 2, LayerNormEps: 1e-12}
	torch.ManualSeed(1)
	d, err := bert.NewDPR(cfg, false, torch.CPUDevice)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bench-encoder")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := d.Save(dir); err != nil {
		log.Fatal(err)
	}
	d.Close()
	enc, err := bert.LoadDPR(dir, modelOptions(dev, dt))
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()

	ids := make([]int64, *batch**seq)
	for i := range ids {
		ids[i] = int64(1000 + (i*7919)%29000)
	}
	run := func() (time.Duration, error) {
		s := torch.NewScope().NoGrad()
		defer s.Close()
		in := bert.Inputs{IDs: s.To(s.FromInt64(ids, *batch, *seq), dev), Mask: s.Ones(torch.Int64, dev, *batch, *seq)}
		t0 := time.Now()
		out := enc.Encode(s, in, false)
		if _, err := s.ToDType(out, torch.Float32).Float32s(); err != nil {
			return 0, err
		}
		return time.Since(t0), s.Err()
	}
	if _, err := run(); err != nil {
		log.Fatal(err)
	}
	var goTimes []time.Duration
	for i := 0; i < *iters; i++ {
		t, err := run()
		if err != nil {
			log.Fatal(err)
		}
		goTimes = append(goTimes, t)
	}
	goBest := best(goTimes)

	script := filepath.Join(filepath.Dir(os.Args[0]), "bench_torch.py")
	if _, err := os.Stat(script); err != nil {
		script = "scripts/bench_encoder/bench_torch.py"
	}
	cmd := exec.Command(*python, script, dir, strconv.FormatInt(*batch, 10), strconv.FormatInt(*seq, 10),
		strconv.Itoa(*iters), strconv.Itoa(*threads), *device, *dtype)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("python side: %v\n%s", err, out.String())
	}
	var pyBest time.Duration
	var pyImpl string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "best_seconds "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			pyBest = time.Duration(f * float64(time.Second))
		}
		if v, ok := strings.CutPrefix(line, "impl "); ok {
			pyImpl = v
		}
	}
	seqs := float64(*batch)
	fmt.Printf("BERT encoder, %d layers, hidden %d, batch %d x %d tokens, %s %s, %d threads, libtorch %s\n",
		*layers, *hidden, *batch, *seq, dev, dt, *threads, torch.Version())
	fmt.Printf("%-28s %12s %14s\n", "implementation", "best batch", "sequences/s")
	fmt.Printf("%-28s %12s %14.1f\n", "re2g (Go)", goBest.Round(time.Millisecond), seqs/goBest.Seconds())
	fmt.Printf("%-28s %12s %14.1f\n", "python eager ("+pyImpl+")", pyBest.Round(time.Millisecond), seqs/pyBest.Seconds())
	fmt.Printf("go/python encoder throughput ratio: %.3f\n", pyBest.Seconds()/goBest.Seconds())
}

func best(ts []time.Duration) time.Duration {
	b := ts[0]
	for _, t := range ts {
		if t < b {
			b = t
		}
	}
	return b
}
