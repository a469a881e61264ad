package tunnel

import (
	"slices"
	"testing"
	"time"
)

func TestPeersRoundTrip(t *testing.T) {
	in := []Peer{{ID: "p1", Addr: "10.0.0.1:3024"}, {Addr: "proxy.example.com:443"}}
	out, err := decodePeers(encodePeers(in))
	if err != nil || !slices.Equal(in, out) {
		t.Fatalf("decodePeers(encodePeers(%v)) = %v, %v", in, out, err)
	}
	if _, err := decodePeers([]byte("{")); err == nil {
		t.Fatal("broken JSON accepted")
	}
	got, err := decodePeers([]byte(`[{"id":"x","addr":""},{"addr":" "},{"addr":"h:1"}]`))
	if err != nil || len(got) != 1 || got[0].Addr != "h:1" {
		t.Fatalf("empty addresses not dropped: %v, %v", got, err)
	}
	big := make([]Peer, maxPeers+1)
	for i := range big {
		big[i].Addr = "h:1"
	}
	if _, err := decodePeers(encodePeers(big)); err == nil {
		t.Fatal("oversized peer list accepted")
	}
}

func FuzzDecodePeers(f *testing.F) {
	f.Add([]byte(`[{"id":"p1","addr":"127.0.0.1:3024"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"addr":""}]`))
	f.Add([]byte(`{"addr":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := decodePeers(b)
		if err != nil {
			return
		}
		if len(peers) > maxPeers {
			t.Fatalf("%d peers accepted", len(peers))
		}
		for _, p := range peers {
			if p.Addr == "" {
				t.Fatal("empty address accepted")
			}
		}
		again, err := decodePeers(encodePeers(peers))
		if err != nil || !slices.Equal(again, peers) {
			t.Fatalf("re-encoding changed %v to %v (%v)", peers, again, err)
		}
	})
}

func TestBackoff(t *testing.T) {
	var b Backoff // defaults: 250ms, 30s
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	for n, w := range want {
		if got := b.Ceiling(n); got != w {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w)
		}
	}
	for _, n := range []int{7, 8, 62, 63, 1000} {
		if got := b.Ceiling(n); got != 30*time.Second {
			t.Errorf("Ceiling(%d) = %v, want the 30s cap", n, got)
		}
	}
	if got := b.Ceiling(-1); got != 250*time.Millisecond {
		t.Errorf("Ceiling(-1) = %v", got)
	}
	// Full jitter: anywhere in [0, ceiling).
	if got := b.Delay(3, 0); got != 0 {
		t.Errorf("Delay(3, 0) = %v", got)
	}
	if got := b.Delay(3, 0.999); got >= 2*time.Second || got < 1990*time.Millisecond {
		t.Errorf("Delay(3, 0.999) = %v", got)
	}
	custom := Backoff{Base: 3 * time.Second, Cap: 10 * time.Second}
	if got := custom.Ceiling(2); got != 10*time.Second {
		t.Errorf("custom Ceiling(2) = %v", got)
	}
}
