package main

import (
	"testing"
	"time"
)

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0s",
		45 * time.Second:                  "45s",
		time.Hour:                         "1h",
		time.Hour + 30*time.Second:        "1h1m",
		11*time.Hour + 59*time.Minute:     "11h59m",
		26 * time.Hour:                    "1d2h",
		2160 * time.Hour:                  "90d",
		2160*time.Hour - 10*time.Second:   "90d",
		30*time.Minute + 29*time.Second:   "30m",
		47*time.Hour + 59*time.Minute + 1: "1d23h59m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
