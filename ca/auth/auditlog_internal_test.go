package auth

import (
	"fmt"
	"testing"
)

func TestUIDWindowForgetsTheOldest(t *testing.T) {
	w := newUIDWindow(3)
	for i := range 3 {
		w.add(fmt.Sprint(i))
	}
	w.add("0") // refreshed: now the newest
	w.add("3") // evicts "1"
	for id, want := range map[string]bool{"0": true, "1": false, "2": true, "3": true} {
		if w.contains(id) != want {
			t.Errorf("contains(%s) = %v, want %v", id, !want, want)
		}
	}
	if w.order.Len() != 3 || len(w.index) != 3 {
		t.Errorf("window holds %d/%d entries, want 3", w.order.Len(), len(w.index))
	}
}
