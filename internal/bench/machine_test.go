package bench

import "testing"

func TestParseCPUModel(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\n"
	if got := ParseCPUModel([]byte(x86)); got != "Intel(R) Xeon(R) Processor @ 2.80GHz" {
		t.Errorf("x86: %q", got)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 48.00\nHardware\t: BCM2835\n"
	if got := ParseCPUModel([]byte(arm)); got != "BCM2835" {
		t.Errorf("arm: %q", got)
	}
	if got := ParseCPUModel(nil); got != "" {
		t.Errorf("empty: %q", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 2048: "2.0 KiB", 20 << 20: "20.0 MiB", 24604572 << 10: "23.5 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
