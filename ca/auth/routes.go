package auth

import (
	"net/http"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ping", s.public(s.handlePing))
	mux.Handle("GET /v1/ca/{type}", s.public(s.handleGetCA))
	mux.Handle("POST /v1/login", s.public(s.handleLogin))
	mux.Handle("POST /v1/signup", s.public(s.handleSignup))
	mux.Handle("POST /v1/join", s.public(s.handleJoin))
	mux.Handle("POST /v1/join/trust", s.public(s.handleJoinTrust))

	mux.Handle("GET /v1/status", s.authed(s.handleStatus))
	mux.Handle("POST /v1/certs/route", s.authed(s.handleSignRoute))
	mux.Handle("POST /v1/certs/session", s.authed(s.handleSignSession))
	mux.Handle("POST /v1/certs/db", s.authed(s.handleSignDatabaseCert))
	mux.Handle("POST /v1/certs/host", s.authed(s.handleRenewHost))
	mux.Handle("POST /v1/inventory/heartbeat", s.authed(s.handleHeartbeat))
	mux.Handle("GET /v1/inventory/databases", s.authed(s.handleListDatabases))
	mux.Handle("POST /v1/inventory/proxies", s.authed(s.handleProxyHeartbeat))
	mux.Handle("GET /v1/inventory/proxies", s.authed(s.handleListProxies))

	mux.Handle("GET /v1/users", s.authed(s.handleListUsers))
	mux.Handle("POST /v1/users", s.authed(s.handleCreateUser))
	mux.Handle("GET /v1/users/{name}", s.authed(s.handleGetUser))
	mux.Handle("PUT /v1/users/{name}", s.authed(s.handleUpdateUser))
	mux.Handle("DELETE /v1/users/{name}", s.authed(s.handleDeleteUser))

	mux.Handle("GET /v1/roles", s.authed(s.handleListRoles))
	mux.Handle("POST /v1/roles", s.authed(s.handlePutRole))
	mux.Handle("GET /v1/roles/{name}", s.authed(s.handleGetRole))
	mux.Handle("PUT /v1/roles/{name}", s.authed(s.handlePutRole))
	mux.Handle("DELETE /v1/roles/{name}", s.authed(s.handleDeleteRole))

	mux.Handle("GET /v1/tokens", s.authed(s.handleListTokens))
	mux.Handle("POST /v1/tokens", s.authed(s.handleCreateToken))
	mux.Handle("DELETE /v1/tokens/{id}", s.authed(s.handleDeleteToken))

	mux.Handle("GET /v1/locks", s.authed(s.handleListLocks))
	mux.Handle("POST /v1/locks", s.authed(s.handleCreateLock))
	mux.Handle("DELETE /v1/locks/{name}", s.authed(s.handleDeleteLock))

	mux.Handle("POST /v1/audit/events", s.authed(newAuditIngest(s).handleEmit))
	mux.Handle("GET /v1/audit/events", s.authed(s.handleSearchAudit))

	mux.Handle("/", s.public(func(w http.ResponseWriter, r *http.Request, c *caller) error {
		return apiError(authclient.CodeNotFound, "%s %s is not an API call of this auth service (version %s)", r.Method, r.URL.Path, Version)
	}))
	return mux
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, authclient.PingResponse{
		ClusterName:   s.cluster.name,
		ServerVersion: Version,
		SecondFactor:  s.cfg.SecondFactor,
	})
	return nil
}

func (s *Server) handleGetCA(w http.ResponseWriter, r *http.Request, c *caller) error {
	t := ca.AuthorityType(r.PathValue("type"))
	if s.cluster.authority(t) == nil {
		return apiError(authclient.CodeBadRequest, "CA type %q is not one of user, host, db", t)
	}
	writeJSON(w, http.StatusOK, authclient.CAResponse{Type: string(t), Certs: certsPEM(s.cluster.certs(t))})
	return nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceCluster, policy.VerbRead); err != nil {
		return err
	}
	users, err := s.cfg.Storage.Range(ctx, prefixUsers, 0)
	if err != nil {
		return err
	}
	dbs, err := s.listDatabases(ctx, "")
	if err != nil {
		return err
	}
	out := authclient.StatusResponse{
		ClusterName: s.cluster.name,
		Users:       len(users),
		Databases:   countDatabases(dbs),
		Uptime:      s.cfg.Clock().Sub(s.started),
	}
	for _, t := range []ca.AuthorityType{ca.UserCA, ca.HostCA, ca.DatabaseCA} {
		a := s.cluster.authority(t)
		out.CAs = append(out.CAs, authclient.CAPin{Type: string(t), Fingerprint: a.Fingerprint(), Expires: a.Cert.NotAfter})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
