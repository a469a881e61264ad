package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const prefixLocks = "locks/"

func (s *Server) listLocks(ctx context.Context) ([]policy.Lock, error) {
	items, err := s.cfg.Storage.Range(ctx, prefixLocks, 0)
	if err != nil {
		return nil, err
	}
	out := make([]policy.Lock, 0, len(items))
	for _, it := range items {
		var l policy.Lock
		if err := json.Unmarshal(it.Value, &l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// checkLocks refuses a locked identity. Host identities are never locked
// by user or role locks.
func (s *Server) checkLocks(ctx context.Context, id *ca.Identity) error {
	if id.Kind != ca.KindUser {
		return nil
	}
	return s.checkLocksFor(ctx, id.Username, id.Roles)
}

func (s *Server) checkLocksFor(ctx context.Context, user string, roles []string) error {
	locks, err := s.listLocks(ctx)
	if err != nil {
		return err
	}
	return policy.CheckLocks(locks, user, roles, s.cfg.Clock())
}

func (s *Server) handleListLocks(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.authorizeRead(r.Context(), c, policy.ResourceLock, policy.VerbList, ca.SystemRoleDatabase, ca.SystemRoleProxy); err != nil {
		return err
	}
	locks, err := s.listLocks(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, locks)
	return nil
}

func (s *Server) handleCreateLock(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceLock, policy.VerbCreate); err != nil {
		return err
	}
	var req authclient.CreateLockRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Target.User == "" && req.Target.Role == "" {
		return apiError(authclient.CodeBadRequest, "a lock needs a target: --user or --role")
	}
	if req.TTL < 0 {
		return apiError(authclient.CodeBadRequest, "a lock's TTL cannot be negative")
	}
	now := s.cfg.Clock()
	lock := policy.Lock{
		Name:      randomID()[:16],
		Target:    req.Target,
		Message:   req.Message,
		CreatedBy: c.name(),
		Created:   now,
	}
	var expires time.Time
	if req.TTL > 0 {
		expires = now.Add(req.TTL)
		lock.Expires = expires
	}
	v, err := json.Marshal(lock)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Storage.Create(ctx, storage.Item{Key: prefixLocks + lock.Name, Value: v, Expires: expires}); err != nil {
		return err
	}
	s.emitChange(ctx, c, audit.TypeLockCreate, audit.KindLock, lock.Name)
	writeJSON(w, http.StatusCreated, lock)
	return nil
}

func (s *Server) handleDeleteLock(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceLock, policy.VerbDelete); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.cfg.Storage.Delete(ctx, prefixLocks+name); err != nil {
		if storage.IsNotFound(err) {
			return apiError(authclient.CodeNotFound, "lock %q does not exist; `pctl locks ls` lists them", name)
		}
		return err
	}
	s.emitChange(ctx, c, audit.TypeLockDelete, audit.KindLock, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
