package auth

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const (
	prefixInventoryDB   = "inventory/db/"
	defaultHeartbeatTTL = 90 * time.Second
	maxHeartbeatTTL     = 10 * time.Minute
	maxHeartbeatDBs     = 1000
)

// protocols the agents may serve.
var protocols = map[string]bool{"postgres": true, "mysql": true}

// handleHeartbeat refreshes the databases a database agent serves. Each
// record expires TTL after the heartbeat, so an agent that stops leaves
// the inventory on its own.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if !c.isHost(ca.SystemRoleDatabase) {
		return apiError(authclient.CodeAccessDenied, "only database agents send heartbeats")
	}
	var req authclient.HeartbeatRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Databases) > maxHeartbeatDBs {
		return apiError(authclient.CodeBadRequest, "one agent may serve at most %d databases", maxHeartbeatDBs)
	}
	ttl := clampTTL(req.TTL, defaultHeartbeatTTL, maxHeartbeatTTL)
	now := s.cfg.Clock()
	for _, db := range req.Databases {
		if err := policy.ValidateName("database", db.Name); err != nil {
			return apiError(authclient.CodeBadRequest, "%s", sentence(err))
		}
		if !protocols[db.Protocol] {
			return apiError(authclient.CodeBadRequest, "database %q has protocol %q; use postgres or mysql", db.Name, db.Protocol)
		}
		db.HostID = c.id.Username
		db.LastHeartbeat = now
		db.Expires = now.Add(ttl)
		v, err := json.Marshal(db)
		if err != nil {
			return err
		}
		key := prefixInventoryDB + db.Name + "/" + db.HostID
		if _, err := s.cfg.Storage.Put(ctx, storage.Item{Key: key, Value: v, Expires: db.Expires}); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDatabases returns every live inventory record, one per database and
// agent, sorted by database name.
func (s *Server) listDatabases(ctx context.Context, prefix string) ([]authclient.Database, error) {
	items, err := s.cfg.Storage.Range(ctx, prefixInventoryDB+prefix, 0)
	if err != nil {
		return nil, err
	}
	out := make([]authclient.Database, 0, len(items))
	for _, it := range items {
		var db authclient.Database
		if err := json.Unmarshal(it.Value, &db); err != nil {
			return nil, err
		}
		out = append(out, db)
	}
	return out, nil
}

// findDatabase returns one live record of a database by name.
func (s *Server) findDatabase(ctx context.Context, name string) (*authclient.Database, error) {
	dbs, err := s.listDatabases(ctx, name+"/")
	if err != nil {
		return nil, err
	}
	if len(dbs) == 0 {
		return nil, apiError(authclient.CodeNotFound,
			"database %q is not registered or its agent is offline; `pcl db ls` lists the databases you can reach", name)
	}
	return &dbs[0], nil
}

// handleListDatabases lists the inventory: all of it for administrators and
// proxies, what their roles let them see for users (without URIs).
func (s *Server) handleListDatabases(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	dbs, err := s.listDatabases(ctx, "")
	if err != nil {
		return err
	}
	if c.id.Kind == ca.KindUser {
		checker, err := s.checkerFor(ctx, c.id)
		if err != nil {
			return err
		}
		visible := dbs[:0]
		for _, db := range dbs {
			if checker.CanListDatabase(policyDatabase(&db)) {
				db.URI = ""
				visible = append(visible, db)
			}
		}
		dbs = visible
	} else if !c.isHost(ca.SystemRoleAdmin) && !c.isHost(ca.SystemRoleProxy) {
		return apiError(authclient.CodeAccessDenied, "%s may not list databases", c.name())
	}
	writeJSON(w, http.StatusOK, dbs)
	return nil
}

func policyDatabase(db *authclient.Database) policy.Database {
	return policy.Database{Name: db.Name, Protocol: db.Protocol, Labels: db.Labels}
}

// countDatabases counts distinct database names in the inventory.
func countDatabases(dbs []authclient.Database) int {
	seen := map[string]bool{}
	for _, db := range dbs {
		seen[strings.ToLower(db.Name)] = true
	}
	return len(seen)
}

const (
	prefixInventoryProxy = "inventory/proxy/"
	defaultProxyTTL      = 90 * time.Second
)

// handleProxyHeartbeat refreshes the calling proxy's record, which agents
// read to keep a tunnel to every proxy.
func (s *Server) handleProxyHeartbeat(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !c.isHost(ca.SystemRoleProxy) {
		return apiError(authclient.CodeAccessDenied, "only proxies send proxy heartbeats")
	}
	var req authclient.ProxyHeartbeatRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		return apiError(authclient.CodeBadRequest, "addr %q is not host:port", req.Addr)
	}
	now := s.cfg.Clock()
	p := authclient.Proxy{HostID: c.id.Username, Addr: req.Addr, LastHeartbeat: now,
		Expires: now.Add(clampTTL(req.TTL, defaultProxyTTL, maxHeartbeatTTL))}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Storage.Put(r.Context(), storage.Item{Key: prefixInventoryProxy + p.HostID, Value: v, Expires: p.Expires}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleListProxies lists live proxies to cluster components.
func (s *Server) handleListProxies(w http.ResponseWriter, r *http.Request, c *caller) error {
	if c.id.Kind != ca.KindHost {
		return apiError(authclient.CodeAccessDenied, "only cluster components list proxies")
	}
	items, err := s.cfg.Storage.Range(r.Context(), prefixInventoryProxy, 0)
	if err != nil {
		return err
	}
	out := make([]authclient.Proxy, 0, len(items))
	for _, it := range items {
		var p authclient.Proxy
		if err := json.Unmarshal(it.Value, &p); err != nil {
			return err
		}
		out = append(out, p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
