package auth

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const (
	prefixTokens    = "tokens/"
	prefixHosts     = "hosts/"
	defaultTokenTTL = 30 * time.Minute
	maxTokenTTL     = 30 * 24 * time.Hour
	tokenIDLen      = 16 // hex digits: authclient.TokenID
)

// Join token types and the system role each grants.
var tokenRoles = map[string]string{
	"db":    ca.SystemRoleDatabase,
	"proxy": ca.SystemRoleProxy,
}

type hostRecord struct {
	HostID  string    `json:"host_id"`
	Role    string    `json:"role"`
	Joined  time.Time `json:"joined"`
	TokenID string    `json:"token_id"`
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceToken, policy.VerbCreate); err != nil {
		return err
	}
	var req authclient.CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, ok := tokenRoles[req.Type]; !ok {
		return apiError(authclient.CodeBadRequest, "token type %q is not one of db, proxy", req.Type)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = defaultTokenTTL
	}
	if ttl < 0 || ttl > maxTokenTTL {
		return apiError(authclient.CodeBadRequest, "a join token may live at most %v", maxTokenTTL)
	}
	secret := randomID()
	hash := hashSecret(secret) // audit.TokenID(secret) is hash[:tokenIDLen]
	now := s.cfg.Clock()
	t := authclient.Token{ID: hash[:tokenIDLen], Type: req.Type, OneTime: req.OneTime, Created: now, Expires: now.Add(ttl)}
	v, _ := json.Marshal(t)
	if _, err := s.cfg.Storage.Create(ctx, storage.Item{Key: prefixTokens + hash, Value: v, Expires: t.Expires}); err != nil {
		return err
	}
	s.emitChange(ctx, c, audit.TypeJoinTokenCreate, audit.KindJoinToken, t.ID)
	writeJSON(w, http.StatusCreated, authclient.CreateTokenResponse{Token: t, Secret: secret})
	return nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.authorize(r.Context(), c, policy.ResourceToken, policy.VerbList); err != nil {
		return err
	}
	items, err := s.cfg.Storage.Range(r.Context(), prefixTokens, 0)
	if err != nil {
		return err
	}
	out := make([]authclient.Token, 0, len(items))
	for _, it := range items {
		var t authclient.Token
		if err := json.Unmarshal(it.Value, &t); err != nil {
			return err
		}
		out = append(out, t)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleDeleteToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceToken, policy.VerbDelete); err != nil {
		return err
	}
	id := r.PathValue("id")
	items, err := s.cfg.Storage.Range(ctx, prefixTokens, 0)
	if err != nil {
		return err
	}
	for _, it := range items {
		if len(id) >= 8 && strings.HasPrefix(strings.TrimPrefix(it.Key, prefixTokens), id) {
			if err := s.cfg.Storage.Delete(ctx, it.Key); err != nil && !storage.IsNotFound(err) {
				return err
			}
			s.emitChange(ctx, c, audit.TypeJoinTokenDelete, audit.KindJoinToken, id)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return apiError(authclient.CodeNotFound, "no join token has ID %q; `pctl tokens ls` lists them", id)
}

// handleJoin exchanges a join token for host certificates. It is called
// without a certificate, so failures are rate limited per source.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	var req authclient.JoinRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if wait := s.limiter.check("", c.addr); wait > 0 {
		return apiError(authclient.CodeRateLimited, "too many failed joins from this address; try again in %v", wait.Round(time.Second))
	}
	invalid := apiError(authclient.CodeUnauthenticated,
		"the join token is invalid or expired; make a new one with `pctl tokens add`")
	key := prefixTokens + hashSecret(req.Token)
	it, err := s.cfg.Storage.Get(ctx, key)
	if storage.IsNotFound(err) {
		s.limiter.fail("", c.addr)
		return invalid
	}
	if err != nil {
		return err
	}
	var tok authclient.Token
	if err := json.Unmarshal(it.Value, &tok); err != nil {
		return err
	}
	role := tokenRoles[tok.Type]
	if req.Role != role {
		return apiError(authclient.CodeAccessDenied, "this join token is for role %s, not %s", role, req.Role)
	}
	hostID := req.HostID
	if hostID == "" {
		hostID = randomID()
	}
	if err := policy.ValidateName("host", hostID); err != nil {
		return apiError(authclient.CodeBadRequest, "%s", sentence(err))
	}
	if err := s.recordHost(ctx, hostID, role, tok.ID); err != nil {
		return err
	}
	if tok.OneTime {
		if err := s.cfg.Storage.Delete(ctx, key); err != nil {
			if storage.IsNotFound(err) {
				return invalid // another join used it first
			}
			return err
		}
	}
	jc := &caller{addr: c.addr, id: &ca.Identity{Kind: ca.KindHost, Username: hostID, Roles: []string{role}}}
	out, err := s.issueHostCerts(ctx, jc, hostID, []string{role}, req.PublicKey, req.SSHPublicKey, req.DNSNames, req.IPAddresses)
	if err != nil {
		return err
	}
	s.emit(ctx, &audit.AgentJoin{
		Metadata:           audit.Metadata{Type: audit.TypeAgentJoin},
		ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: c.addr},
		HostID:             hostID,
		SystemRole:         role,
		TokenID:            tok.ID,
		Status:             audit.Status{Success: true},
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// recordHost remembers which role a host ID joined as; a host ID cannot
// come back as another role.
func (s *Server) recordHost(ctx context.Context, hostID, role, tokenID string) error {
	v, _ := json.Marshal(hostRecord{HostID: hostID, Role: role, Joined: s.cfg.Clock(), TokenID: tokenID})
	_, err := s.cfg.Storage.Create(ctx, storage.Item{Key: prefixHosts + hostID, Value: v})
	if !storage.IsAlreadyExists(err) {
		return err
	}
	it, err := s.cfg.Storage.Get(ctx, prefixHosts+hostID)
	if err != nil {
		return err
	}
	var prev hostRecord
	if err := json.Unmarshal(it.Value, &prev); err != nil {
		return err
	}
	if prev.Role != role {
		return apiError(authclient.CodeAccessDenied, "host %s joined as %s before and cannot join as %s; give it a new host ID", hostID, prev.Role, role)
	}
	return nil
}

// handleJoinTrust proves to a host that is about to join that this service
// knows its join token, bound to the host's TLS connection (see
// authclient.VerifyJoinTrust), so the host can trust the host CA without a
// pin. A proxy forwarding the call supplies the keying material of its own
// TLS connection with the host.
func (s *Server) handleJoinTrust(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	var req authclient.JoinTrustRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if wait := s.limiter.check("", c.addr); wait > 0 {
		return apiError(authclient.CodeRateLimited, "too many failed joins from this address; try again in %v", wait.Round(time.Second))
	}
	ekm, err := s.exportedKeyingMaterial(r)
	if err != nil {
		return err
	}
	invalid := apiError(authclient.CodeUnauthenticated,
		"no valid join token has this ID; make a new one with `pctl tokens add`")
	if len(req.TokenID) != tokenIDLen {
		s.limiter.fail("", c.addr)
		return invalid
	}
	items, err := s.cfg.Storage.Range(ctx, prefixTokens+req.TokenID, 2)
	if err != nil {
		return err
	}
	if len(items) != 1 {
		s.limiter.fail("", c.addr)
		return invalid
	}
	hash, err := hex.DecodeString(strings.TrimPrefix(items[0].Key, prefixTokens))
	if err != nil {
		return err
	}
	cas := s.cluster.certs(ca.HostCA)
	ders := make([][]byte, len(cas))
	for i, c := range cas {
		ders[i] = c.Raw
	}
	writeJSON(w, http.StatusOK, authclient.JoinTrustResponse{
		HostCAs: certsPEM(cas),
		MAC:     base64.StdEncoding.EncodeToString(authclient.JoinTrustMAC(hash, ekm, ders)),
	})
	return nil
}

// exportedKeyingMaterial is the join-trust binding of the caller's TLS
// connection: forwarded by a proxy (identify has checked the proxy), or
// exported from this service's own connection.
func (s *Server) exportedKeyingMaterial(r *http.Request) ([]byte, error) {
	if h := r.Header.Get(authclient.HeaderForwardedEKM); h != "" {
		if r.Header.Get(authclient.HeaderForwardedFor) == "" {
			return nil, apiError(authclient.CodeBadRequest, "keying material is only accepted on calls a proxy forwards")
		}
		ekm, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(ekm) != 32 {
			return nil, apiError(authclient.CodeBadRequest, "the forwarded keying material is malformed")
		}
		return ekm, nil
	}
	if r.TLS == nil {
		return nil, apiError(authclient.CodeBadRequest, "join trust needs TLS")
	}
	ekm, err := r.TLS.ExportKeyingMaterial(authclient.JoinTrustLabel, nil, 32)
	if err != nil {
		return nil, apiError(authclient.CodeBadRequest, "the TLS connection cannot export keying material (TLS 1.3, or 1.2 with extended master secret, is needed)")
	}
	return ekm, nil
}
