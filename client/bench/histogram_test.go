package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	if got := bucketOf(int64(MaxDuration)); got >= numBuckets {
		t.Fatalf("bucketOf(MaxDuration) = %d, past the %d buckets", got, numBuckets)
	}
	if got := bucketOf(1 << 41); got < numBuckets-subCount {
		t.Errorf("bucketOf(2^41) = %d: the last group of buckets is unused", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v int64) {
		i := bucketOf(v)
		lower, width := bucketRange(i)
		if v < lower || v >= lower+width {
			t.Fatalf("%d is in bucket %d, which holds [%d, %d)", v, i, lower, lower+width)
		}
		if v >= 2*subCount && float64(width)/float64(v) > 1.0/subCount {
			t.Fatalf("bucket %d of %d is %d wide, more than 1/%d of it", i, v, width, subCount)
		}
		if i > 0 && bucketOf(lower-1) != i-1 {
			t.Fatalf("the value below bucket %d (%d) is in bucket %d", i, lower-1, bucketOf(lower-1))
		}
	}
	for v := range int64(5000) {
		check(v)
	}
	for range 100000 {
		check(rng.Int64N(int64(MaxDuration)))
		check(int64(math.Exp(rng.Float64() * math.Log(float64(MaxDuration)))))
	}
	for p := range 42 {
		check(1 << p)
		check(1<<p - 1)
	}
}

// reference is the nearest-rank quantile of sorted durations.
func reference(sorted []time.Duration, q float64) time.Duration {
	if q <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantileMatchesSortedSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dists := map[string]func() time.Duration{
		"uniform 1µs-1s": func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(time.Second))) },
		"lognormal ~100µs": func() time.Duration {
			return time.Duration(100e3 * math.Exp(rng.NormFloat64()))
		},
		"exponential ~50µs with a tail": func() time.Duration {
			d := time.Duration(rng.ExpFloat64() * 50e3)
			if rng.IntN(1000) == 0 {
				d += 20 * time.Millisecond
			}
			return d
		},
		"few values": func() time.Duration {
			return []time.Duration{90 * time.Microsecond, 110 * time.Microsecond, 5 * time.Millisecond}[rng.IntN(3)]
		},
		"constant": func() time.Duration { return 123456 * time.Nanosecond },
		"tiny":     func() time.Duration { return time.Duration(rng.IntN(300)) },
		"huge":     func() time.Duration { return 10*time.Minute + time.Duration(rng.Int64N(int64(40*time.Minute))) },
	}
	quantiles := []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1}
	for name, next := range dists {
		for _, n := range []int{1, 2, 3, 10, 1000, 100000} {
			var h Histogram
			values := make([]time.Duration, n)
			for i := range values {
				values[i] = next()
				h.Record(values[i])
			}
			slices.Sort(values)
			if h.Count() != int64(n) || h.Min() != values[0] || h.Max() != values[n-1] {
				t.Fatalf("%s, n=%d: count %d min %v max %v, want %d %v %v", name, n, h.Count(), h.Min(), h.Max(), n, values[0], values[n-1])
			}
			var sum time.Duration
			for _, v := range values {
				sum += v
			}
			if want := sum / time.Duration(n); h.Mean() != want {
				t.Errorf("%s, n=%d: mean %v, want %v", name, n, h.Mean(), want)
			}
			for _, q := range quantiles {
				got, want := h.Quantile(q), reference(values, q)
				if diff := math.Abs(float64(got - want)); diff > 0.005*float64(want)+1 {
					t.Errorf("%s, n=%d: Quantile(%v) = %v, want %v (off by %.2f%%)", name, n, q, got, want, 100*diff/float64(want))
				}
			}
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	for _, q := range []float64{0, 0.5, 1} {
		if got := h.Quantile(q); got != 0 {
			t.Errorf("empty: Quantile(%v) = %v", q, got)
		}
	}
	if h.Count() != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Bins(8) != nil {
		t.Errorf("empty: count %d min %v max %v mean %v bins %v", h.Count(), h.Min(), h.Max(), h.Mean(), h.Bins(8))
	}

	h.Record(-time.Second)
	if h.Count() != 1 || h.Min() != 0 || h.Max() != 0 || h.Quantile(0.5) != 0 {
		t.Errorf("a negative duration: count %d min %v max %v p50 %v; want it counted as 0", h.Count(), h.Min(), h.Max(), h.Quantile(0.5))
	}

	var long Histogram
	long.Record(3 * time.Hour)
	long.Record(2 * time.Hour)
	if long.Max() != 3*time.Hour || long.Min() != 2*time.Hour || long.Quantile(1) != 3*time.Hour {
		t.Errorf("beyond MaxDuration: min %v max %v p100 %v", long.Min(), long.Max(), long.Quantile(1))
	}
	if got := long.Quantile(0.5); got != 2*time.Hour {
		t.Errorf("beyond MaxDuration: p50 %v, want it clamped to Min 2h", got)
	}
	if got := long.Quantile(math.NaN()); got != 2*time.Hour {
		t.Errorf("Quantile(NaN) = %v, want Min", got)
	}
}

func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var all, a, b, empty Histogram
	for i := range 10000 {
		d := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&empty)
	merged.Merge(nil)
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(&empty)
	if merged != all {
		t.Errorf("merging the halves differs from recording all: count %d/%d min %v/%v max %v/%v",
			merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max())
	}
	empty.Merge(&a)
	if empty != a {
		t.Errorf("merging into an empty histogram does not copy it")
	}
}

func TestBins(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var h Histogram
	for range 5000 {
		h.Record(time.Duration(50e3 * math.Exp(rng.NormFloat64())))
	}
	bins := h.Bins(8)
	if len(bins) != 8 {
		t.Fatalf("%d bins, want 8", len(bins))
	}
	var total int64
	for i, b := range bins {
		total += b.Count
		if b.From >= b.To || i > 0 && b.From != bins[i-1].To {
			t.Errorf("bin %d is [%v, %v) after [%v, %v)", i, b.From, b.To, bins[max(i-1, 0)].From, bins[max(i-1, 0)].To)
		}
	}
	if total != h.Count() || bins[0].From != h.Min() || bins[7].To != h.Max() || bins[0].Count == 0 || bins[7].Count == 0 {
		t.Errorf("bins %v: total %d of %d, from %v to %v (min %v max %v)", bins, total, h.Count(), bins[0].From, bins[7].To, h.Min(), h.Max())
	}
	// Bins hold what they say, to within a bucket.
	for _, b := range bins {
		var in int64
		rng := rand.New(rand.NewPCG(7, 8))
		for range 5000 {
			d := time.Duration(50e3 * math.Exp(rng.NormFloat64()))
			if d >= b.From && d < b.To || d == b.To && b.To == h.Max() {
				in++
			}
		}
		if diff := in - b.Count; diff < -int64(len(bins))*10 || diff > int64(len(bins))*10 {
			t.Errorf("bin [%v, %v) counts %d, but %d durations fall in it", b.From, b.To, b.Count, in)
		}
	}

	var one Histogram
	one.Record(time.Millisecond)
	one.Record(time.Millisecond)
	if got := one.Bins(8); len(got) != 1 || got[0] != (Bin{time.Millisecond, time.Millisecond, 2}) {
		t.Errorf("all alike: bins %v, want one", got)
	}
	var zero Histogram
	zero.Record(0)
	zero.Record(5)
	if got := zero.Bins(2); len(got) != 2 || got[0].Count+got[1].Count != 2 {
		t.Errorf("from 0: bins %v", got)
	}
}

func TestRecordAllocatesNothing(t *testing.T) {
	h := NewHistogram()
	d := time.Duration(0)
	if n := testing.AllocsPerRun(1000, func() { d += 977; h.Record(d) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	rng := rand.New(rand.NewPCG(9, 10))
	values := make([]time.Duration, 4096)
	for i := range values {
		values[i] = time.Duration(100e3 * math.Exp(rng.NormFloat64()))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.Record(values[i&4095])
	}
}
