package dbagent

import (
	"strings"
	"testing"
)

func TestDatabaseValidateMaxPacketSize(t *testing.T) {
	d := Database{Name: "my1", Protocol: "mysql", URI: "127.0.0.1:3306", MaxPacketSize: 1 << 20}
	if err := d.Validate(); err != nil {
		t.Errorf("max_packet_size 1 MiB: %v", err)
	}
	d.MaxPacketSize = -1
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "max_packet_size") {
		t.Errorf("max_packet_size -1: %v; want an error naming max_packet_size", err)
	}
}
