package client

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

// ProxySettings say where the proxy serves database protocols.
type ProxySettings struct {
	authclient.ProxySettings
	// Guessed is true when the cluster did not say (the profile's address
	// names an Auth service, or a proxy too old to tell): every address is
	// then the profile's proxy address, which may well be wrong.
	Guessed bool
}

// ProxySettings returns where the proxy serves PostgreSQL and MySQL, from
// its ping. The answer is cached in profile.json; a new login asks again.
// When the answer carries no proxy settings, every address is the
// profile's proxy address and Guessed is set (and nothing is cached).
func (p *Profile) ProxySettings(ctx context.Context) (*ProxySettings, error) {
	if p.Proxy != nil {
		return &ProxySettings{ProxySettings: *p.Proxy}, nil
	}
	ac, err := p.AuthClient(ctx)
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	ping, err := ac.Ping(ctx)
	if err != nil {
		return nil, callError(err, p.ProxyAddr)
	}
	if ping.Proxy == nil {
		return &ProxySettings{
			ProxySettings: authclient.ProxySettings{PublicAddr: p.ProxyAddr, PostgresAddr: p.ProxyAddr, MySQLAddr: p.ProxyAddr},
			Guessed:       true,
		}, nil
	}
	if ping.Proxy.PublicAddr == "" {
		ping.Proxy.PublicAddr = p.ProxyAddr
	}
	p.Proxy = ping.Proxy
	// Cache only into the profile.json of this same login.
	if cur, err := LoadProfile(p.Home); err == nil && cur.ProxyAddr == p.ProxyAddr &&
		cur.Username == p.Username && cur.Expires.Equal(p.Expires) {
		if err := p.save(); err != nil {
			return nil, err
		}
	}
	return &ProxySettings{ProxySettings: *ping.Proxy}, nil
}

// DatabaseConfig is how a database client reaches a database through the
// proxy with its route certificate: what `pcl db config` prints and what
// [DatabaseConfig.Command] and [DatabaseConfig.Env] are made from.
type DatabaseConfig struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	// Host and Port are the proxy's listener for the protocol.
	Host   string `json:"host"`
	Port   int    `json:"port"`
	DBUser string `json:"db_user"`
	DBName string `json:"db_name,omitempty"`
	// CAFile holds the host CAs that verify the proxy (host-cas.pem).
	CAFile string `json:"ca_file"`
	// CertFile is the route certificate; KeyFile the login's private key.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// Expires is when the route certificate expires.
	Expires time.Time `json:"expires"`
	// DirectTLS says the proxy has no native PostgreSQL listener: the
	// client must start with TLS on the proxy's public port (psql 17's
	// sslnegotiation=direct).
	DirectTLS bool `json:"direct_tls,omitempty"`
	// AddrGuessed says the cluster did not tell where the proxy serves the
	// protocol: Host and Port are the profile's proxy address, a guess.
	AddrGuessed bool `json:"addr_guessed,omitempty"`
}

// Addr is Host:Port.
func (c *DatabaseConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// GuessNote is a sentence for the person when the address is a guess
// (AddrGuessed), to show when connecting fails; "" otherwise.
func (c *DatabaseConfig) GuessNote() string {
	if !c.AddrGuessed {
		return ""
	}
	return fmt.Sprintf("the cluster did not say where its proxy serves %s, so %s (the address logged in to) was used; "+
		"if that is an Auth service rather than a proxy, log in through the proxy (pcl login --proxy PROXY:PORT)",
		c.Protocol, c.Addr())
}

// DatabaseConfig returns the connection settings of database name, which
// must have a valid route certificate ([Profile.DatabaseLogin]): a
// [*RouteError] says it is missing, expired or from an earlier login, a
// [*LoginExpiredError] that the login itself expired.
func (p *Profile) DatabaseConfig(ctx context.Context, name string) (*DatabaseConfig, error) {
	route, err := p.checkedRoute(name)
	if err != nil {
		return nil, err
	}
	ps, err := p.ProxySettings(ctx)
	if err != nil {
		return nil, err
	}
	cfg := &DatabaseConfig{
		Name: name, Protocol: route.Protocol, DBUser: route.DBUser, DBName: route.DBName,
		CAFile: p.HostCAsPath(), CertFile: p.DatabaseCertPath(name), KeyFile: p.KeyPath(),
		Expires: route.Expires, AddrGuessed: ps.Guessed,
	}
	var addr string
	switch route.Protocol {
	case ProtocolPostgres:
		addr = ps.PostgresAddr
		if addr == "" {
			addr, cfg.DirectTLS = ps.PublicAddr, true
		}
	case ProtocolMySQL:
		addr = ps.MySQLAddr
		if addr == "" {
			return nil, fmt.Errorf("the proxy at %s has no MySQL listener; ask an administrator to set mysql_listen on the proxy", ps.PublicAddr)
		}
	default:
		return nil, fmt.Errorf("database %q speaks %q, which this client does not know; upgrade pcl", name, route.Protocol)
	}
	host, portStr, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("the proxy's %s address %q is not host:port; ask an administrator to check the proxy's configuration", route.Protocol, addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		// A listener on all interfaces: reach it where the API was reached.
		if host, _, err = net.SplitHostPort(p.ProxyAddr); err != nil {
			return nil, fmt.Errorf("the profile's proxy address %q is not host:port; log in again", p.ProxyAddr)
		}
	}
	cfg.Host, cfg.Port = host, port
	return cfg, nil
}
