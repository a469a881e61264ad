package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const prefixRoles = "roles/"

func (s *Server) getRole(ctx context.Context, name string) (*policy.Role, error) {
	it, err := s.cfg.Storage.Get(ctx, prefixRoles+name)
	if err != nil {
		return nil, err
	}
	var r policy.Role
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Server) handleListRoles(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.authorizeRead(r.Context(), c, policy.ResourceRole, policy.VerbList, ca.SystemRoleDatabase); err != nil {
		return err
	}
	items, err := s.cfg.Storage.Range(r.Context(), prefixRoles, 0)
	if err != nil {
		return err
	}
	out := make([]*policy.Role, 0, len(items))
	for _, it := range items {
		var role policy.Role
		if err := json.Unmarshal(it.Value, &role); err != nil {
			return err
		}
		out = append(out, &role)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleGetRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.authorizeRead(r.Context(), c, policy.ResourceRole, policy.VerbRead, ca.SystemRoleDatabase); err != nil {
		return err
	}
	role, err := s.getRole(r.Context(), r.PathValue("name"))
	if storage.IsNotFound(err) {
		return apiError(authclient.CodeNotFound, "role %q does not exist", r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, role)
	return nil
}

// handlePutRole creates (POST) or creates-or-replaces (PUT) a role.
func (s *Server) handlePutRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	create := r.Method == http.MethodPost
	verb := policy.VerbUpdate
	if create {
		verb = policy.VerbCreate
	}
	if err := s.authorize(ctx, c, policy.ResourceRole, verb); err != nil {
		return err
	}
	var role policy.Role
	if err := decode(r, &role); err != nil {
		return err
	}
	if name := r.PathValue("name"); name != "" && name != role.Metadata.Name {
		return apiError(authclient.CodeBadRequest, "the role in the body is %q, not %q", role.Metadata.Name, name)
	}
	if err := role.Validate(); err != nil {
		return apiError(authclient.CodeBadRequest, "%s", sentence(err))
	}
	v, err := json.Marshal(&role)
	if err != nil {
		return err
	}
	item := storage.Item{Key: prefixRoles + role.Metadata.Name, Value: v}
	event := audit.TypeRoleUpdate
	if create {
		event = audit.TypeRoleCreate
		if _, err := s.cfg.Storage.Create(ctx, item); err != nil {
			if storage.IsAlreadyExists(err) {
				return apiError(authclient.CodeAlreadyExists, "role %q exists already; use `pctl roles update` to replace it", role.Metadata.Name)
			}
			return err
		}
	} else if _, err := s.cfg.Storage.Put(ctx, item); err != nil {
		return err
	}
	s.emitChange(ctx, c, event, audit.KindRole, role.Metadata.Name)
	writeJSON(w, http.StatusOK, &role)
	return nil
}

func (s *Server) handleDeleteRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceRole, policy.VerbDelete); err != nil {
		return err
	}
	name := r.PathValue("name")
	users, err := s.cfg.Storage.Range(ctx, prefixUsers, 0)
	if err != nil {
		return err
	}
	var holders []string
	for _, it := range users {
		var u userRecord
		if err := json.Unmarshal(it.Value, &u); err != nil {
			return err
		}
		if slices.Contains(u.Roles, name) {
			holders = append(holders, u.Name)
		}
	}
	if len(holders) > 0 {
		return apiError(authclient.CodeConflict, "role %q is held by %s; take it from them first", name, strings.Join(holders, ", "))
	}
	if err := s.cfg.Storage.Delete(ctx, prefixRoles+name); err != nil {
		if storage.IsNotFound(err) {
			return apiError(authclient.CodeNotFound, "role %q does not exist", name)
		}
		return err
	}
	s.emitChange(ctx, c, audit.TypeRoleDelete, audit.KindRole, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
