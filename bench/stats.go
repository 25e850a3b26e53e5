package main

import (
	"math"
	"slices"
	"time"
)

// Figure is one tool's figure for a scenario over the rounds: the median
// and the best round, because on a shared, noisy machine the median says
// what to expect and the best says what the code can do.
type Figure struct {
	Median  float64   `json:"median"`
	Best    float64   `json:"best"`
	Samples []float64 `json:"samples"`
}

// newFigure summarises one sample per round. higherBetter picks whether the
// best sample is the largest (rates) or the smallest (times).
func newFigure(samples []float64, higherBetter bool) Figure {
	f := Figure{Samples: samples, Median: math.NaN(), Best: math.NaN()}
	if len(samples) == 0 {
		return f
	}
	f.Median = median(samples)
	if higherBetter {
		f.Best = slices.Max(samples)
	} else {
		f.Best = slices.Min(samples)
	}
	return f
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	return percentile(xs, 50)
}

// percentile p (0..100) of xs by linear interpolation between closest
// ranks; NaN for no samples.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 1 {
		return s[0]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
}

// durationsMS converts durations to milliseconds.
func durationsMS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// toMS converts one duration to milliseconds.
func toMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
