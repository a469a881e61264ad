package dbtest

import (
	"strings"
	"testing"
)

func TestNewChecksOptions(t *testing.T) {
	if _, err := NewPostgres(Options{}); err == nil || !strings.Contains(err.Error(), "CertPrefix") {
		t.Errorf("NewPostgres without CertPrefix: %v", err)
	}
	if _, err := NewMariaDB(Options{}); err == nil || !strings.Contains(err.Error(), "CertPrefix") {
		t.Errorf("NewMariaDB without CertPrefix: %v", err)
	}
}
