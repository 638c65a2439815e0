package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCounts(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			w.Write([]byte("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.2345e+08\n"))
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			return
		}
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(200)
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
		default:
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Path: "/v1/answer", Bodies: [][]byte{[]byte(`{}`)}, Clients: 4,
		Duration: 200 * time.Millisecond, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != int(n.Load()) || rep.OK+rep.Rejected+rep.Errors != rep.Requests || rep.OK == 0 || rep.Rejected == 0 || rep.ErrorKinds["500"] != rep.Errors {
		t.Fatalf("report %+v after %d requests", rep, n.Load())
	}
	if rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max {
		t.Fatalf("percentiles %v %v %v", rep.P50, rep.P99, rep.Max)
	}
	rss, err := ResidentBytes(context.Background(), srv.URL, "")
	if err != nil || rss != 123450000 {
		t.Fatalf("rss %d %v", rss, err)
	}
}
