package auth

import (
	"net/http"

	"github.com/portcullis-db/portcullis/ca"
)

// Identify exposes identify to the external tests and benchmarks: the
// identity the call presents, or why it is refused.
func Identify(s *Server, r *http.Request) (*ca.Identity, error) {
	c, certErr, err := s.identify(r)
	if err == nil {
		err = certErr
	}
	if err != nil {
		return nil, err
	}
	return c.id, nil
}
