package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const (
	prefixUsers  = "users/"
	prefixSignup = "signup/"

	defaultBcryptCost = bcrypt.DefaultCost
	minPasswordLen    = 8
	maxPasswordLen    = 72 // bcrypt's limit
	defaultSignupTTL  = time.Hour
	maxSignupTTL      = 7 * 24 * time.Hour
)

// userRecord is a user as stored: the public part plus its secrets.
type userRecord struct {
	authclient.User
	PasswordHash []byte `json:"password_hash,omitempty"`
	TOTPSecret   string `json:"totp_secret,omitempty"`
	TOTPLastStep int64  `json:"totp_last_step,omitempty"` // refuses a code used once already
}

type signupRecord struct {
	Username string    `json:"username"`
	Expires  time.Time `json:"expires"`
}

func (s *Server) getUser(ctx context.Context, name string) (*userRecord, int64, error) {
	it, err := s.cfg.Storage.Get(ctx, prefixUsers+name)
	if err != nil {
		return nil, 0, err
	}
	var u userRecord
	if err := json.Unmarshal(it.Value, &u); err != nil {
		return nil, 0, err
	}
	return &u, it.Revision, nil
}

// updateUser applies fn to the stored user, retrying on concurrent changes.
func (s *Server) updateUser(ctx context.Context, name string, fn func(*userRecord) error) (*userRecord, error) {
	for {
		u, rev, err := s.getUser(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		v, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		_, err = s.cfg.Storage.CompareAndSwap(ctx, rev, storage.Item{Key: prefixUsers + name, Value: v})
		if storage.IsCompareFailed(err) {
			continue
		}
		return u, err
	}
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.authorize(r.Context(), c, policy.ResourceUser, policy.VerbList); err != nil {
		return err
	}
	items, err := s.cfg.Storage.Range(r.Context(), prefixUsers, 0)
	if err != nil {
		return err
	}
	out := make([]authclient.User, 0, len(items))
	for _, it := range items {
		var u userRecord
		if err := json.Unmarshal(it.Value, &u); err != nil {
			return err
		}
		out = append(out, u.User)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	name := r.PathValue("name")
	if c.name() != name || c.id.Route != nil {
		if err := s.authorize(r.Context(), c, policy.ResourceUser, policy.VerbRead); err != nil {
			return err
		}
	}
	u, _, err := s.getUser(r.Context(), name)
	if storage.IsNotFound(err) {
		return apiError(authclient.CodeNotFound, "user %q does not exist", name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u.User)
	return nil
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceUser, policy.VerbCreate); err != nil {
		return err
	}
	var req authclient.CreateUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := policy.ValidateName(audit.KindUser, req.Name); err != nil {
		return apiError(authclient.CodeBadRequest, "%s", sentence(err))
	}
	if err := s.checkRolesExist(ctx, req.Roles); err != nil {
		return err
	}
	now := s.cfg.Clock()
	rec := userRecord{User: authclient.User{
		Name:      req.Name,
		Roles:     req.Roles,
		Traits:    cleanTraits(req.Traits),
		CreatedBy: c.name(),
		Created:   now,
	}}
	resp := authclient.CreateUserResponse{}
	var token string
	if req.Password != "" {
		hash, err := s.hashPassword(req.Password)
		if err != nil {
			return err
		}
		rec.PasswordHash = hash
	} else {
		ttl := req.TokenTTL
		if ttl == 0 {
			ttl = defaultSignupTTL
		}
		if ttl < 0 || ttl > maxSignupTTL {
			return apiError(authclient.CodeBadRequest, "a sign-up token may live at most %v", maxSignupTTL)
		}
		rec.Pending = true
		token = randomID() + randomID()
		resp.SignupToken = token
		resp.SignupExpires = now.Add(ttl)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Storage.Create(ctx, storage.Item{Key: prefixUsers + req.Name, Value: v}); err != nil {
		if storage.IsAlreadyExists(err) {
			return apiError(authclient.CodeAlreadyExists, "user %q exists already; use `pctl users update` to change it", req.Name)
		}
		return err
	}
	if token != "" {
		sv, _ := json.Marshal(signupRecord{Username: req.Name, Expires: resp.SignupExpires})
		if _, err := s.cfg.Storage.Put(ctx, storage.Item{Key: prefixSignup + hashSecret(token), Value: sv, Expires: resp.SignupExpires}); err != nil {
			return err
		}
	}
	s.emitChange(ctx, c, audit.TypeUserCreate, audit.KindUser, req.Name)
	resp.User = rec.User
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceUser, policy.VerbUpdate); err != nil {
		return err
	}
	var req authclient.User
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		return apiError(authclient.CodeBadRequest, "a user cannot be renamed; remove it and add it again")
	}
	if err := s.checkRolesExist(ctx, req.Roles); err != nil {
		return err
	}
	u, err := s.updateUser(ctx, name, func(u *userRecord) error {
		u.Roles = req.Roles
		u.Traits = cleanTraits(req.Traits)
		return nil
	})
	if storage.IsNotFound(err) {
		return apiError(authclient.CodeNotFound, "user %q does not exist", name)
	}
	if err != nil {
		return err
	}
	s.emitChange(ctx, c, audit.TypeUserUpdate, audit.KindUser, name)
	writeJSON(w, http.StatusOK, u.User)
	return nil
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceUser, policy.VerbDelete); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.cfg.Storage.Delete(ctx, prefixUsers+name); err != nil {
		if storage.IsNotFound(err) {
			return apiError(authclient.CodeNotFound, "user %q does not exist", name)
		}
		return err
	}
	s.emitChange(ctx, c, audit.TypeUserDelete, audit.KindUser, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	var req authclient.SignupRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	invalid := apiError(authclient.CodeUnauthenticated,
		"the sign-up token is invalid, used or expired; ask an administrator for a new one")
	if wait := s.limiter.check("", c.addr); wait > 0 {
		return apiError(authclient.CodeRateLimited, "too many failed attempts from this address; try again in %v", wait.Round(time.Second))
	}
	key := prefixSignup + hashSecret(req.Token)
	it, err := s.cfg.Storage.Get(ctx, key)
	if storage.IsNotFound(err) {
		s.limiter.fail("", c.addr)
		return invalid
	}
	if err != nil {
		return err
	}
	var sr signupRecord
	if err := json.Unmarshal(it.Value, &sr); err != nil {
		return err
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	if (req.TOTPSecret == "") != (req.TOTPCode == "") {
		return apiError(authclient.CodeBadRequest, "enrolling an authenticator needs both its secret and a code from it")
	}
	var step int64
	if req.TOTPSecret != "" {
		var ok bool
		if step, ok = validateTOTP(req.TOTPSecret, req.TOTPCode, s.cfg.Clock(), 0); !ok {
			return apiError(authclient.CodeBadRequest, "the one-time code does not match the authenticator's secret; check the device's clock and try again")
		}
	}
	hash, err := s.hashPassword(req.Password)
	if err != nil {
		return err
	}
	// Claim the token first: of two concurrent sign-ups only one deletes it.
	if err := s.cfg.Storage.Delete(ctx, key); err != nil {
		if storage.IsNotFound(err) {
			return invalid
		}
		return err
	}
	_, err = s.updateUser(ctx, sr.Username, func(u *userRecord) error {
		if !u.Pending {
			return invalid
		}
		u.Pending = false
		u.PasswordHash = hash
		u.TOTPSecret = req.TOTPSecret
		u.TOTPLastStep = step
		u.HasTOTP = req.TOTPSecret != ""
		return nil
	})
	if storage.IsNotFound(err) {
		return invalid
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, authclient.SignupResponse{Username: sr.Username})
	return nil
}

func (s *Server) checkRolesExist(ctx context.Context, roles []string) error {
	if len(roles) == 0 {
		return apiError(authclient.CodeBadRequest, "a user needs at least one role (for example --roles access)")
	}
	for _, name := range roles {
		if _, err := s.cfg.Storage.Get(ctx, prefixRoles+name); err != nil {
			if storage.IsNotFound(err) {
				return apiError(authclient.CodeBadRequest, "role %q does not exist; `pctl roles ls` lists the roles", name)
			}
			return err
		}
	}
	return nil
}

func (s *Server) hashPassword(pw string) ([]byte, error) {
	if err := checkPassword(pw); err != nil {
		return nil, err
	}
	return bcrypt.GenerateFromPassword([]byte(pw), s.cfg.BcryptCost)
}

func checkPassword(pw string) error {
	if len(pw) < minPasswordLen {
		return apiError(authclient.CodeBadRequest, "the password must be at least %d characters long", minPasswordLen)
	}
	if len(pw) > maxPasswordLen {
		return apiError(authclient.CodeBadRequest, "the password must be at most %d bytes long", maxPasswordLen)
	}
	return nil
}

// cleanTraits drops empty trait lists and duplicate values.
func cleanTraits(in map[string][]string) map[string][]string {
	var out map[string][]string
	for k, vs := range in {
		var kept []string
		for _, v := range vs {
			if v != "" && !slices.Contains(kept, v) {
				kept = append(kept, v)
			}
		}
		if len(kept) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[k] = kept
		}
	}
	return out
}

// hashSecret is how tokens are keyed in storage: the state file never holds
// a usable token.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (s *Server) emitChange(ctx context.Context, c *caller, eventType, kind, name string) {
	s.emit(ctx, &audit.ResourceChange{
		Metadata:           audit.Metadata{Type: eventType},
		UserMetadata:       audit.UserMetadata{User: c.name(), Roles: callerRoles(c)},
		ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: c.addr},
		ResourceMetadata:   audit.ResourceMetadata{Kind: kind, Name: name},
	})
}

func callerRoles(c *caller) []string {
	if c.id == nil {
		return nil
	}
	return c.id.Roles
}
