package client

import "testing"

func TestSanitizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"proxy.example.com:3080": "proxy.example.com_3080",
		"127.0.0.1:3025":         "127.0.0.1_3025",
		"[::1]:3080":             "___1__3080",
		"Proxy.Example.COM:443":  "proxy.example.com_443",
		"../..:1":                ".._.._1",
		"a/b\\c:1":               "a_b_c_1",
	} {
		if got := sanitizeAddr(in); got != want {
			t.Errorf("sanitizeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
