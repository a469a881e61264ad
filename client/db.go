package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

// Protocols of database routes.
const (
	ProtocolPostgres = "postgres"
	ProtocolMySQL    = "mysql"
)

// DatabaseRoute is a database the user logged in to with
// [Profile.DatabaseLogin]: its route certificate is stored in the profile
// as keys/<proxy>/db/<user>/<name>.crt, and this record next to it as
// <name>.json.
type DatabaseRoute struct {
	Name     string    `json:"name"`
	Protocol string    `json:"protocol"`
	DBUser   string    `json:"db_user"`
	DBName   string    `json:"db_name,omitempty"`
	Expires  time.Time `json:"expires"`
}

// DatabaseCertPath is the route certificate file of database name.
func (p *Profile) DatabaseCertPath(name string) string {
	return filepath.Join(p.routeDir(), name+".crt")
}

// routeInfoPath is the route record of database name.
func (p *Profile) routeInfoPath(name string) string {
	return filepath.Join(p.routeDir(), name+".json")
}

// checkLogin refuses an expired login.
func (p *Profile) checkLogin() error {
	if p.Expired(p.now()) {
		return &LoginExpiredError{Username: p.Username, ProxyAddr: p.ProxyAddr, Expired: p.Expires}
	}
	return nil
}

// checkDatabaseName refuses a name that is not a database name (and so
// could not be a file name in the profile).
func checkDatabaseName(name string) error {
	if name == "" {
		return errors.New("name the database; pcl db ls lists those you can reach")
	}
	if err := policy.ValidateName("database", name); err != nil {
		return fmt.Errorf("%q is not a database name; pcl db ls lists those you can reach", name)
	}
	return nil
}

// Databases lists the databases the user's roles let them see, one entry
// per name (several agents may serve one database), sorted by name.
// Per-agent fields (HostID, heartbeats, URI) are cleared.
func (p *Profile) Databases(ctx context.Context) ([]authclient.Database, error) {
	if err := p.checkLogin(); err != nil {
		return nil, err
	}
	ac, err := p.AuthClient(ctx)
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	dbs, err := ac.ListDatabases(ctx)
	if err != nil {
		return nil, callError(err, p.ProxyAddr)
	}
	return dedupeDatabases(dbs), nil
}

func dedupeDatabases(dbs []authclient.Database) []authclient.Database {
	seen := make(map[string]bool, len(dbs))
	out := make([]authclient.Database, 0, len(dbs))
	for _, db := range dbs {
		if seen[db.Name] {
			continue
		}
		seen[db.Name] = true
		out = append(out, authclient.Database{
			Name: db.Name, Protocol: db.Protocol, Labels: db.Labels, Description: db.Description,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DatabaseLogin gets a route certificate for database name as dbUser,
// opening dbName, and stores it in the profile. The certificate is signed
// for the key of the login (the private key stays where it is) and expires
// no later than the login.
//
// An empty dbUser (dbName) is taken from the login's db_users (db_names)
// trait when it lists exactly one value; otherwise a [*ChoiceError] lists
// the choices. A PostgreSQL route needs a db name; a MySQL route may have
// none. A refusal by the cluster (say, a db user the roles do not allow) is
// an [*authclient.Error] whose message is one sentence for the person.
func (p *Profile) DatabaseLogin(ctx context.Context, name, dbUser, dbName string) (*DatabaseRoute, error) {
	if err := checkDatabaseName(name); err != nil {
		return nil, err
	}
	if err := p.checkLogin(); err != nil {
		return nil, err
	}
	tc, err := p.TLSCertificate()
	if err != nil {
		return nil, err
	}
	ac, err := p.AuthClient(ctx)
	if err != nil {
		return nil, err
	}
	defer ac.Close()

	dbs, err := ac.ListDatabases(ctx)
	if err != nil {
		return nil, callError(err, p.ProxyAddr)
	}
	i := slices.IndexFunc(dbs, func(db authclient.Database) bool { return db.Name == name })
	if i < 0 {
		return nil, &authclient.Error{Code: authclient.CodeNotFound, Message: fmt.Sprintf(
			"database %q is unknown, offline or not allowed by your roles; pcl db ls lists the databases you can reach", name)}
	}
	protocol := dbs[i].Protocol

	if dbUser == "" {
		if dbUser, err = p.pickTrait(name, policy.TraitDBUsers, "db user", "--db-user"); err != nil {
			return nil, err
		}
	}
	if dbName == "" {
		picked, err := p.pickTrait(name, policy.TraitDBNames, "db name", "--db-name")
		switch {
		case err == nil:
			dbName = picked
		case protocol == ProtocolPostgres:
			// PostgreSQL always opens a database; MySQL may start
			// without one.
			return nil, err
		}
	}

	pub, err := authclient.MarshalPublicKey(tc.Leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	resp, err := ac.SignRoute(ctx, authclient.RouteRequest{
		PublicKey: pub, ServiceName: name, Protocol: protocol, DBUser: dbUser, DBName: dbName,
	})
	if err != nil {
		return nil, callError(err, p.ProxyAddr)
	}
	cert, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		return nil, fmt.Errorf("the route certificate for database %q does not parse (%v); check that --proxy names a Portcullis proxy", name, err)
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil || id.Route == nil || id.Route.ServiceName != name || id.Route.DBUser != dbUser ||
		id.Route.DBName != dbName || !publicKeysEqual(cert.PublicKey, tc.Leaf.PublicKey) {
		return nil, fmt.Errorf("the route certificate for database %q is not the one asked for; check that --proxy names a Portcullis proxy", name)
	}
	route := &DatabaseRoute{
		Name: name, Protocol: id.Route.Protocol, DBUser: dbUser, DBName: dbName, Expires: cert.NotAfter,
	}
	info, err := json.MarshalIndent(route, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.routeDir(), dirPerm); err != nil {
		return nil, fmt.Errorf("creating the profile directory: %w", err)
	}
	if err := ca.WriteFileAtomic(p.DatabaseCertPath(name), ca.EncodeCertPEM(cert.Raw), filePerm); err != nil {
		return nil, err
	}
	if err := ca.WriteFileAtomic(p.routeInfoPath(name), append(info, '\n'), filePerm); err != nil {
		return nil, err
	}
	return route, nil
}

// pickTrait is the one concrete value of the login's trait key, or a
// [*ChoiceError].
func (p *Profile) pickTrait(db, key, what, flag string) (string, error) {
	var choices []string
	for _, v := range p.Traits[key] {
		if v != "" && v != policy.Wildcard && !slices.Contains(choices, v) {
			choices = append(choices, v)
		}
	}
	if len(choices) == 1 {
		return choices[0], nil
	}
	return "", &ChoiceError{Database: db, What: what, Flag: flag, Choices: choices}
}

// DatabaseRoutes lists the databases logged in to, sorted by name, as
// recorded when the route certificates were stored. It does not check the
// certificates: [Profile.DatabaseConfig] does.
func (p *Profile) DatabaseRoutes() ([]DatabaseRoute, error) {
	entries, err := os.ReadDir(p.routeDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DatabaseRoute
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || checkDatabaseName(name) != nil {
			continue
		}
		r, err := p.readRouteInfo(name)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (p *Profile) readRouteInfo(name string) (*DatabaseRoute, error) {
	data, err := readFile(p.routeInfoPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &RouteError{Database: name, Reason: RouteNotLoggedIn}
	}
	if err != nil {
		return nil, err
	}
	var r DatabaseRoute
	if err := json.Unmarshal(data, &r); err != nil || r.Name != name {
		return nil, &RouteError{Database: name, Reason: RouteDamaged}
	}
	return &r, nil
}

// checkedRoute loads the route certificate of database name and checks
// that it can be used now: the login is valid ([*LoginExpiredError]), and
// the certificate exists, parses, carries the route, has not expired and
// is for the login's key ([*RouteError]). The route returned is the one the
// certificate carries.
func (p *Profile) checkedRoute(name string) (*DatabaseRoute, error) {
	if err := checkDatabaseName(name); err != nil {
		return nil, err
	}
	if err := p.checkLogin(); err != nil {
		return nil, err
	}
	data, err := readFile(p.DatabaseCertPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &RouteError{Database: name, Reason: RouteNotLoggedIn}
	}
	if err != nil {
		return nil, err
	}
	cert, err := ca.ParseCertPEM(data)
	if err != nil {
		return nil, &RouteError{Database: name, Reason: RouteDamaged}
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil || id.Route == nil || id.Route.ServiceName != name {
		return nil, &RouteError{Database: name, Reason: RouteDamaged}
	}
	if !p.now().Before(cert.NotAfter) {
		return nil, &RouteError{Database: name, Reason: RouteExpired, Expired: cert.NotAfter}
	}
	userCert, err := p.Certificate()
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, userCert.PublicKey) {
		return nil, &RouteError{Database: name, Reason: RouteStale}
	}
	return &DatabaseRoute{
		Name: name, Protocol: id.Route.Protocol, DBUser: id.Route.DBUser, DBName: id.Route.DBName, Expires: cert.NotAfter,
	}, nil
}

// DatabaseLogout removes the route certificate of database name, or of
// every database when name is "". Removing a route that is not there is a
// [*RouteError] (RouteNotLoggedIn); removing all when there are none is not
// an error.
func (p *Profile) DatabaseLogout(name string) error {
	if name == "" {
		if err := os.RemoveAll(p.routeDir()); err != nil {
			return fmt.Errorf("removing the database certificates: %w", err)
		}
		return nil
	}
	if err := checkDatabaseName(name); err != nil {
		return err
	}
	removed := false
	for _, path := range []string{p.DatabaseCertPath(name), p.routeInfoPath(name)} {
		err := os.Remove(path)
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("removing the certificate of database %q: %w", name, err)
		}
	}
	if !removed {
		return &RouteError{Database: name, Reason: RouteNotLoggedIn}
	}
	return nil
}
