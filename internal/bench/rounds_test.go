package bench

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestSchedule(t *testing.T) {
	var got []string
	for _, st := range Schedule(3, 1) {
		s := st.Side.String()[:1]
		if st.Warmup {
			s = "w" + s
		}
		got = append(got, s)
	}
	want := []string{"wd", "wp", "d", "p", "p", "d", "d", "p"}
	if !slices.Equal(got, want) {
		t.Errorf("Schedule(3, 1) = %v, want %v", got, want)
	}
}

func TestInterleave(t *testing.T) {
	calls := 0
	s, err := Interleave(context.Background(), 3, 1, func(_ context.Context, side Side, warmup bool) ([]float64, error) {
		calls++
		if warmup {
			return []float64{-1, -1}, nil
		}
		base := 100.0
		if side == Portcullis {
			base = 10
		}
		return []float64{base + float64(calls), float64(calls)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 8 {
		t.Errorf("%d calls, want 8", calls)
	}
	// Calls 3..8 ran d p p d d p.
	if want := [][]float64{{103, 106, 107}, {3, 6, 7}}; !slices.Equal(s.Direct[0], want[0]) || !slices.Equal(s.Direct[1], want[1]) {
		t.Errorf("direct %v, want %v", s.Direct, want)
	}
	if want := []float64{14, 15, 18}; !slices.Equal(s.Portcullis[0], want) {
		t.Errorf("portcullis %v, want %v", s.Portcullis[0], want)
	}
	if d, p := s.Median(0); d != 106 || p != 15 {
		t.Errorf("medians %v %v", d, p)
	}
}

func TestInterleaveErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := Interleave(context.Background(), 2, 0, func(_ context.Context, side Side, _ bool) ([]float64, error) {
		if side == Portcullis {
			return nil, boom
		}
		return []float64{1}, nil
	})
	if !errors.Is(err, boom) || err.Error() != "portcullis, round 1: boom" {
		t.Errorf("error %v", err)
	}
	n := 0
	_, err = Interleave(context.Background(), 2, 0, func(context.Context, Side, bool) ([]float64, error) {
		n++
		return make([]float64, n), nil
	})
	if err == nil {
		t.Error("a changing number of figures is not an error")
	}
	if _, err := Interleave(context.Background(), 0, 0, nil); err == nil {
		t.Error("0 rounds is not an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Interleave(ctx, 1, 0, func(context.Context, Side, bool) ([]float64, error) { return []float64{1}, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tt.in)
		if got := Median(in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("Median reordered its input: %v", in)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}
