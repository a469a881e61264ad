package authclient

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes carried by [Error]. They are stable: callers branch on them.
const (
	CodeBadRequest      = "bad_request"
	CodeUnauthenticated = "unauthenticated" // no certificate, or credentials refused
	CodeAccessDenied    = "access_denied"   // authenticated, but policy refuses
	CodeNotFound        = "not_found"
	CodeAlreadyExists   = "already_exists"
	CodeConflict        = "conflict" // a concurrent change won; retry
	CodeRateLimited     = "rate_limited"
	CodeLocked          = "locked"
	CodeCertExpired     = "cert_expired"
	CodeInternal        = "internal"
)

// Error is a refusal from the Auth service. Message is one sentence meant
// for a person; it never carries a secret.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("auth service: %s (HTTP %d)", e.Code, e.Status)
	}
	return e.Message
}

// StatusForCode is the HTTP status the server sends with an error code.
func StatusForCode(code string) int {
	switch code {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthenticated, CodeCertExpired:
		return http.StatusUnauthorized
	case CodeAccessDenied, CodeLocked:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeAlreadyExists, CodeConflict:
		return http.StatusConflict
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// IsAccessDenied reports whether err is a policy refusal.
func IsAccessDenied(err error) bool { return hasCode(err, CodeAccessDenied) }

// IsUnauthenticated reports whether err says the credentials were refused.
func IsUnauthenticated(err error) bool { return hasCode(err, CodeUnauthenticated) }

// IsNotFound reports whether err says the resource does not exist.
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound) }

// IsAlreadyExists reports whether err says the resource exists already.
func IsAlreadyExists(err error) bool { return hasCode(err, CodeAlreadyExists) }

// IsRateLimited reports whether err says too many attempts were made.
func IsRateLimited(err error) bool { return hasCode(err, CodeRateLimited) }

// IsLocked reports whether err says the identity is locked.
func IsLocked(err error) bool { return hasCode(err, CodeLocked) }
