package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's buckets are log-linear, as in HdrHistogram: durations
// below 2^(subBits+1) ns have a bucket each; above, every power of two is
// split into 2^subBits buckets of equal width. A bucket is then at most
// 1/128 of its values wide, so a quantile read from the middle of its
// bucket is within 0.4% of the exact one.
const (
	subBits  = 7
	subCount = 1 << subBits
	// MaxDuration is the longest duration a Histogram tells apart; longer
	// ones are counted in its last bucket (Max still reports them
	// exactly).
	MaxDuration = time.Hour
	// numBuckets covers 0..MaxDuration: 2^42 ns > 1h, so the groups of
	// the powers of two 2^8..2^41 come after the 2^8 exact buckets.
	numBuckets = (42 - subBits + 1) << subBits
)

// A Histogram counts durations in log-linear buckets from 1 ns to
// [MaxDuration] with about 1% relative precision (0.4% in the worst case).
// Record is cheap and allocates nothing. The zero value is an empty
// histogram ready to use.
//
// A Histogram is not safe for concurrent use: give each goroutine its own
// and [Histogram.Merge] them when they are done, as [Run] does.
type Histogram struct {
	counts   [numBuckets]int64
	count    int64
	sum      int64 // nanoseconds
	min, max time.Duration
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return new(Histogram) }

// bucketOf returns the bucket that counts v nanoseconds.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v > int64(MaxDuration) {
		v = int64(MaxDuration)
	}
	u := uint64(v)
	if u < 2*subCount {
		return int(u)
	}
	g := bits.Len64(u) - 1 - subBits // the group of u's power of two, >= 1
	return g<<subBits + int(u>>g)
}

// bucketRange returns the lowest value counted in bucket i and the
// bucket's width.
func bucketRange(i int) (lower, width int64) {
	if i < 2*subCount {
		return int64(i), 1
	}
	g := i>>subBits - 1
	mantissa := int64(i - g<<subBits)
	return mantissa << g, 1 << g
}

// Record counts one duration; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.count == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.counts[bucketOf(int64(d))]++
	h.count++
	h.sum += int64(d)
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.count += o.count
	h.sum += o.sum
}

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 { return h.count }

// Min is the shortest duration recorded, exactly; 0 when there is none.
func (h *Histogram) Min() time.Duration { return h.min }

// Max is the longest duration recorded, exactly; 0 when there is none.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the average duration recorded, exactly; 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Quantile returns the duration below which a fraction q (0..1) of the
// recorded durations fall: the nearest-rank quantile, that is the
// ceil(q*Count())-th shortest duration, to within the width of its bucket.
// Quantile(0) is Min and Quantile(1) is Max, exactly; an empty histogram
// returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if q <= 0 || math.IsNaN(q) {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := int64(math.Ceil(q * float64(h.count)))
	rank = max(rank, 1)
	var seen int64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return h.clamp(bucketValue(i))
		}
	}
	return h.max
}

// bucketValue is the duration that stands for bucket i: its middle.
func bucketValue(i int) time.Duration {
	lower, width := bucketRange(i)
	return time.Duration(lower + (width-1)/2)
}

// clamp keeps d within the recorded durations.
func (h *Histogram) clamp(d time.Duration) time.Duration {
	return min(max(d, h.min), h.max)
}

// A Bin counts the durations in [From, To) (the last bin of
// [Histogram.Bins] also holds those equal to To).
type Bin struct {
	From, To time.Duration
	Count    int64
}

// Bins returns the distribution in n bins whose bounds grow geometrically
// from Min to Max, each bin's bound the previous one's times
// (Max/Min)^(1/n): a compact view of a latency distribution, long tail
// included. It returns one bin when all durations are alike (or n is 1)
// and nil when the histogram is empty. Durations are placed by their
// bucket, so bins narrower than about 1% may be empty.
func (h *Histogram) Bins(n int) []Bin {
	if h.count == 0 {
		return nil
	}
	lo, hi := max(h.min, 1), max(h.max, 1)
	if n < 1 || hi <= lo {
		n = 1
	}
	bins := make([]Bin, n)
	ratio := float64(hi) / float64(lo)
	edge := func(k int) time.Duration {
		switch k {
		case 0:
			return h.min
		case n:
			return h.max
		}
		return time.Duration(math.Round(float64(lo) * math.Pow(ratio, float64(k)/float64(n))))
	}
	for k := range bins {
		bins[k].From, bins[k].To = edge(k), edge(k+1)
	}
	logRatio := math.Log(ratio)
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		k := 0
		if n > 1 {
			v := max(h.clamp(bucketValue(i)), 1)
			k = int(float64(n) * math.Log(float64(v)/float64(lo)) / logRatio)
			k = min(max(k, 0), n-1)
		}
		bins[k].Count += c
	}
	return bins
}
