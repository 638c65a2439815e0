package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogfmtAndPhases(t *testing.T) {
	kv := logfmt(`time=2026-12-07T15:49:50.767Z level=INFO msg="progress finished" task="read corpus" done=3000 elapsed=78ms`)
	if kv["msg"] != "progress finished" || kv["task"] != "read corpus" || kv["elapsed"] != "78ms" || kv["done"] != "3000" {
		t.Fatalf("logfmt: %v", kv)
	}
	log := strings.Join([]string{
		`time=x level=INFO msg="passage store written" dir=a passages=3 seconds=0.5`,
		`time=x level=INFO msg="progress finished" task=indexing done=3 total=3 unit=docs rate=1/s percent=100 elapsed=1.5s`,
		`time=x level=INFO msg="progress finished" task=indexing done=3 total=3 unit=vectors rate=1/s percent=100 elapsed=9s`,
		`time=x level=INFO msg="vectors imported" vectors=v.npy rows=3 dim=768 seconds=0.25`,
		`time=x level=INFO msg="hnsw index built" index="IDMap(HNSWSQ8) ip d=768" vectors=3 seconds=2`,
		`indexed 3 passages in 3.5 s`,
	}, "\n")
	p := filepath.Join(t.TempDir(), "index.log")
	os.WriteFile(p, []byte(log), 0o644)
	got := logPhases(p)
	want := map[string]float64{"store": 0.5, "bm25 batches": 1.5, "import": 0.25, "hnsw": 2}
	if len(got) != len(want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("phases %v, want %v", got, want)
		}
	}
}

func TestMeasurePercentiles(t *testing.T) {
	calls := 0
	l, err := measure(100, func(int) error { calls++; return nil })
	if err != nil || l.N != 100 || calls != 110 || l.P50 > l.P99 {
		t.Fatalf("%+v %v after %d calls", l, err, calls)
	}
}

func TestFitMetric(t *testing.T) {
	rs := []*scaleResult{
		{Passages: 1000, BM25: &buildStage{childRun: childRun{Seconds: 1, PeakKB: 200 << 10}}},
		{Passages: 10000, BM25: &buildStage{childRun: childRun{Seconds: 10, PeakKB: 300 << 10}}},
		{Passages: 100000, BM25: &buildStage{childRun: childRun{Seconds: 100, PeakKB: 400 << 10}}},
	}
	metric := func(key string) scaleMetric {
		for _, m := range scaleMetrics {
			if m.key == key {
				return m
			}
		}
		t.Fatalf("no metric %s", key)
		return scaleMetric{}
	}
	f, ok := fitMetric(metric("bm25_s"), rs, 1e6)
	if !ok || f.N1 != 10000 || f.N2 != 100000 || math.Abs(f.Slope-1) > 1e-9 || math.Abs(f.Projection-1000) > 1e-6 {
		t.Fatalf("time: %+v", f)
	}
	// memory: fixed + per passage through the two largest sizes
	f, _ = fitMetric(metric("bm25_peak_mib"), rs, 1e6)
	if math.Abs(f.Projection-(400+100.0/90000*900000)) > 1e-6 || math.Abs(f.Slope-math.Log(4.0/3)/math.Log(10)) > 1e-9 {
		t.Fatalf("memory: %+v", f)
	}
	// n log n for an HNSW build
	rs[1].SQ8 = &buildStage{childRun: childRun{Seconds: 20}}
	rs[2].SQ8 = &buildStage{childRun: childRun{Seconds: 250}}
	f, _ = fitMetric(metric("sq8_s"), rs, 1e6)
	if want := 250 * 10 * math.Log(1e6) / math.Log(1e5); math.Abs(f.Projection-want) > 1e-6 {
		t.Fatalf("n log n: %+v, want %g", f, want)
	}
	// a skipped stage is no point
	rs[2].SQ8.Skipped = "--flat-max"
	if _, ok := fitMetric(metric("sq8_s"), rs, 1e6); ok {
		t.Fatal("a fit through a skipped stage")
	}
}
