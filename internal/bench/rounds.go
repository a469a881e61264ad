package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Side is one of the two paths a workload is measured on.
type Side int

const (
	// Direct is TLS with a client certificate straight to the database.
	Direct Side = iota
	// Portcullis is the same client through the proxy, the reverse tunnel
	// and the database agent.
	Portcullis
)

func (s Side) String() string {
	if s == Direct {
		return "direct"
	}
	return "portcullis"
}

// Measure runs one round of a workload on one side and returns its
// figures (one per metric, the same number every call). warmup says that
// the round is not recorded, so it may be shorter.
type Measure func(ctx context.Context, side Side, warmup bool) ([]float64, error)

// Samples are the recorded figures of the rounds of one workload, indexed
// [metric][round] per side.
type Samples struct {
	Direct, Portcullis [][]float64
	// Busy is, per daemon ("proxy", "agent", "auth"), its CPU time over
	// the wall time of each recorded Portcullis round (1 is one core
	// busy), in the rounds' order; nil when not measured.
	Busy map[string][]float64
}

// Median of metric i per side.
func (s *Samples) Median(i int) (direct, portcullis float64) {
	return Median(s.Direct[i]), Median(s.Portcullis[i])
}

// Schedule is the order of an interleaved run: warmups rounds of each side
// (not recorded), then rounds of each, alternating which side goes first
// (D P, P D, D P, ...) so that drift and whatever the previous run left
// behind hit both sides alike.
func Schedule(rounds, warmups int) []Step {
	var steps []Step
	for i := 0; i < warmups; i++ {
		steps = append(steps, Step{Side: Direct, Warmup: true}, Step{Side: Portcullis, Warmup: true})
	}
	for i := 0; i < rounds; i++ {
		first, second := Direct, Portcullis
		if i%2 == 1 {
			first, second = second, first
		}
		steps = append(steps, Step{Side: first, Round: i}, Step{Side: second, Round: i})
	}
	return steps
}

// Step is one run in a [Schedule].
type Step struct {
	Side   Side
	Round  int // 0-based; meaningless for a warm-up
	Warmup bool
}

// Interleave runs m on both sides in the order of [Schedule] and collects
// the recorded figures. It stops at the first error.
func Interleave(ctx context.Context, rounds, warmups int, m Measure) (*Samples, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("bench: %d rounds; need at least 1", rounds)
	}
	s := &Samples{}
	for _, st := range Schedule(rounds, warmups) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		vals, err := m(ctx, st.Side, st.Warmup)
		if err != nil {
			what := fmt.Sprintf("round %d", st.Round+1)
			if st.Warmup {
				what = "warm-up"
			}
			return nil, fmt.Errorf("%s, %s: %w", st.Side, what, err)
		}
		if st.Warmup {
			continue
		}
		dst := &s.Direct
		if st.Side == Portcullis {
			dst = &s.Portcullis
		}
		if *dst == nil {
			*dst = make([][]float64, len(vals))
		}
		if len(vals) != len(*dst) {
			return nil, fmt.Errorf("bench: a round returned %d figures, an earlier one %d", len(vals), len(*dst))
		}
		for i, v := range vals {
			(*dst)[i] = append((*dst)[i], v)
		}
	}
	return s, nil
}

// Median is the middle of xs (the mean of the two middle values for an
// even count); NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
