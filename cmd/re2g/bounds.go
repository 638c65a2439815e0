package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/re2g/re2g/internal/limits"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/urfave/cli/v2"
)

// bound is the range a numeric flag accepts, both ends included (the low
// end excluded with above).
type bound struct {
	lo, hi float64
	note   string // what special values mean, e.g. "0: one per core"
	above  bool   // lo itself is out of range
	any    bool   // any value of the flag's type (seeds)
	unset  bool   // the default means "not given" (the command reads the flag only when set)
}

// Common bounds.
var (
	threads   = bound{lo: 0, hi: float64(limits.MaxThreads()), note: "0: one per core; at most " + limits.MaxThreadsNote()}
	batchSize = bound{lo: 1, hi: neural.MaxBatchSize}
	share     = bound{lo: 0, hi: 1}
)

// bounds gives every numeric flag of every command its range, checked
// before the command runs (applyBounds). A key is a flag name, for every
// command, or "command path/flag name" for a command and its subcommands;
// the longest match wins. TestEveryNumericFlagHasABound keeps the table
// complete. serve's server flags are checked by server.Config.
var bounds = map[string]bound{
	// models (deviceFlags, pipelineFlags and the model commands)
	"threads":                       threads,
	"batch-size":                    batchSize,
	"max-length":                    {lo: 0, hi: neural.MaxLength, note: "0: the model's limit; longer is cut to it"},
	"dense-k":                       {lo: 1, hi: pipeline.MaxK},
	"bm25-k":                        {lo: 1, hi: pipeline.MaxK},
	"rerank-k":                      {lo: 1, hi: pipeline.MaxRerankK},
	"ef-search":                     {lo: 0, hi: pipeline.MaxEfSearch, note: "0: the index's"},
	"k1":                            {lo: 0, hi: pipeline.MaxBM25K1},
	"b":                             share,
	"num-beams":                     {lo: 1, hi: pipeline.MaxBeams},
	"num-return-sequences":          {lo: 1, hi: pipeline.MaxBeams},
	"max-new-tokens":                {lo: 1, hi: pipeline.MaxNewTokens},
	"generate/num-beams":            {lo: 0, hi: pipeline.MaxBeams, note: "0: generation_config.json's"},
	"generate/num-return-sequences": {lo: 0, hi: pipeline.MaxBeams, note: "0: 1, or generation_config.json's"},
	"generate/max-new-tokens":       {lo: 0, hi: pipeline.MaxNewTokens, note: "0: generation_config.json's max_length"},
	"tokenize/max-length":           {lo: 0, hi: 1 << 20, note: "0: no truncation"},

	// index (and index merge)
	"index/chunk":                 {lo: 1, hi: 1 << 20},
	"index/hnsw-m":                {lo: 2, hi: 512},
	"index/ef-construction":       {lo: 1, hi: pipeline.MaxEfSearch},
	"index/ef-search":             {lo: 1, hi: pipeline.MaxEfSearch},
	"sq8-train":                   {lo: 1, hi: 1 << 24, note: "all the vectors when there are fewer"},
	"sq8-seed":                    {any: true},
	"dense index/M":               {lo: 2, hi: 512},
	"dense index/ef-construction": {lo: 1, hi: pipeline.MaxEfSearch},
	"dense index/ef-search":       {lo: 1, hi: pipeline.MaxEfSearch},
	"dense index/threads":         {lo: 0, hi: float64(limits.MaxThreads()), note: "0: all cores; at most " + limits.MaxThreadsNote()},

	// eval, data
	"eval retrieval/hits":             {lo: 1, hi: 100000},
	"eval retrieval/threads":          {lo: 1, hi: float64(limits.MaxThreads()), note: "at most " + limits.MaxThreadsNote()},
	"data kilt-passages/min-words":    {lo: 1, hi: 100000},
	"data kilt-passages/max-words":    {lo: 1, hi: 100000},
	"data kilt-positives/min-overlap": share,
	"data squad-kilt/dev-articles":    {lo: 1, hi: 1 << 20},
	"data squad-kilt/limit":           {lo: 0, hi: 1 << 30, note: "0: all"},
	"seed":                            {any: true},

	// train
	"train/max-train":      {lo: 0, hi: 1 << 30, note: "0: all"},
	"train/max-dev":        {lo: 0, hi: 1 << 30, note: "0: all"},
	"train/max-steps":      {lo: 1, hi: 1 << 40, unset: true},
	"train/distill-weight": share,
	"train/temperature":    {lo: 0, hi: 1e6, above: true, unset: true},
	"train/dist-timeout":   {lo: 0, hi: float64(24 * time.Hour), above: true},

	// demo, device
	"demo/show":   {lo: 0, hi: 100000},
	"device/size": {lo: 1, hi: 16384},

	// bench
	"bench/iters":               {lo: 1, hi: 1000},
	"bench/rounds":              {lo: 1, hi: 100},
	"bench/layers":              {lo: 1, hi: 64},
	"bench/hidden":              {lo: 1, hi: 16384},
	"bench/heads":               {lo: 1, hi: 256},
	"bench/batch":               {lo: 1, hi: neural.MaxBatchSize},
	"bench/seq":                 {lo: 1, hi: 8192},
	"bench/dmodel":              {lo: 1, hi: 16384},
	"bench/ffn":                 {lo: 1, hi: 65536},
	"bench/vocab":               {lo: 4, hi: 1 << 20},
	"bench/source-len":          {lo: 1, hi: 8192},
	"bench/beams":               {lo: 1, hi: pipeline.MaxBeams},
	"bench/new-tokens":          {lo: 1, hi: pipeline.MaxNewTokens},
	"bench batching/max-length": {lo: 8, hi: 8192},
	"bench batching/sample":     {lo: 0, hi: 1 << 30, note: "0: all"},
	"bench serve/clients":       {lo: 1, hi: 10000},
	"bench serve/duration":      {lo: 0, hi: float64(24 * time.Hour), above: true},
	"bench serve/warmup":        {lo: 0, hi: float64(24 * time.Hour)},
	"bench ingest/lookups":      {lo: 1, hi: 1 << 30},
	"dist check/timeout":        {lo: 0, hi: float64(24 * time.Hour), above: true},
	"index/dist-timeout":        {lo: 0, hi: float64(24 * time.Hour), above: true},
	"dist check/size-mb":        {lo: 1, hi: 4096},
	"dist check/iters":          {lo: 1, hi: 1000},
	"bench scale/queries":       {lo: 1, hi: 7938, note: "SQuADShifts New Wiki has 7,938 questions"},
	"bench scale/encode-sample": {lo: 1, hi: 1 << 30},
	"bench scale/base-sample":   {lo: 0, hi: 1 << 30, note: "0: none"},
	"bench scale/dim":           {lo: 1, hi: 65536},
	"bench scale/flat-max":      {lo: 0, hi: 1 << 30, note: "0: every size"},
	"bench scale/sq8-max":       {lo: 0, hi: 1 << 30, note: "0: every size"},
	"bench scale/updates":       {lo: 0, hi: 10_000_000, note: "0: no update stage"},
	"bench scale/compact-max":   {lo: 0, hi: 1 << 30, note: "0: every size"},
	"bench scale/project":       {lo: 1, hi: 1e10},
	"lock-timeout":              {lo: 0, hi: float64(24 * time.Hour), note: "0: a writer does not wait, a reader waits until interrupted"},
	"index add/max-length":      {lo: 0, hi: neural.MaxLength, note: "0: the index's"},
	"serve/reload-poll":         {lo: 0, hi: float64(24 * time.Hour), note: "0: off; SIGHUP reloads"},
}

// lookup finds the bound of flag name under command path: the longest
// "path prefix/name" key, else name.
func lookup(path []string, name string) (bound, bool) {
	for i := len(path); i > 0; i-- {
		if b, ok := bounds[strings.Join(path[:i], " ")+"/"+name]; ok {
			return b, true
		}
	}
	b, ok := bounds[name]
	return b, ok
}

// check reports v out of range as an error naming the flag and the range;
// dur formats the range as durations.
func (b bound) check(name string, v float64, shown string, dur bool) error {
	if b.any {
		return nil
	}
	if !math.IsNaN(v) && v <= b.hi && (v > b.lo || (v == b.lo && !b.above)) {
		return nil
	}
	f := func(x float64) string {
		if dur {
			return time.Duration(x).String()
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	want := f(b.lo) + " to " + f(b.hi)
	if b.above {
		want = "more than " + f(b.lo) + ", at most " + f(b.hi)
	}
	if b.note != "" {
		want += " (" + b.note + ")"
	}
	return fmt.Errorf("--%s %s: want %s", name, shown, want)
}

// applyBounds gives every numeric flag of cmds (and their subcommands) a
// flag action that checks its bound. urfave/cli runs it when the flag is
// set, before the command's action: a bad value stops the command before
// anything runs. Defaults are in range (TestEveryNumericFlagHasABound).
func applyBounds(cmds []*cli.Command, path []string) {
	for _, cmd := range cmds {
		p := append(append([]string(nil), path...), cmd.Name)
		skip := map[string]bool{}
		if len(p) == 1 && p[0] == "serve" {
			for _, f := range serveFlags() {
				skip[f.Names()[0]] = true // server.Config checks these
			}
		}
		for _, fl := range cmd.Flags {
			name := fl.Names()[0]
			b, ok := lookup(p, name)
			if !ok || skip[name] {
				continue
			}
			switch f := fl.(type) {
			case *cli.IntFlag:
				f.Action = func(_ *cli.Context, v int) error { return b.check(name, float64(v), fmt.Sprint(v), false) }
			case *cli.Int64Flag:
				f.Action = func(_ *cli.Context, v int64) error { return b.check(name, float64(v), fmt.Sprint(v), false) }
			case *cli.UintFlag:
				f.Action = func(_ *cli.Context, v uint) error { return b.check(name, float64(v), fmt.Sprint(v), false) }
			case *cli.Uint64Flag:
				f.Action = func(_ *cli.Context, v uint64) error { return b.check(name, float64(v), fmt.Sprint(v), false) }
			case *cli.Float64Flag:
				f.Action = func(_ *cli.Context, v float64) error { return b.check(name, v, fmt.Sprint(v), false) }
			case *cli.DurationFlag:
				f.Action = func(_ *cli.Context, v time.Duration) error { return b.check(name, float64(v), v.String(), true) }
			}
		}
		applyBounds(cmd.Subcommands, p)
	}
}
