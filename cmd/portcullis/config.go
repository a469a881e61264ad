package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-db/portcullis/dbagent"
)

// Config is the daemon's YAML configuration file.
type Config struct {
	// DataDir holds the cluster state, keys and logs (created 0700).
	DataDir string `yaml:"data_dir"`
	// ClusterName names the cluster on first start.
	ClusterName string    `yaml:"cluster_name"`
	Log         LogConfig `yaml:"log"`
	// DiagAddr, if set, serves /healthz and Go's profiler (/debug/pprof/)
	// on this loopback host:port.
	DiagAddr string    `yaml:"diag_addr"`
	Auth     AuthRole  `yaml:"auth"`
	Proxy    ProxyRole `yaml:"proxy"`
	DB       DBRole    `yaml:"db"`
}

// ProxyRole configures the proxy: the cluster's public endpoint.
type ProxyRole struct {
	RoleBase `yaml:",inline"`
	// PublicAddr is the host:port that agents and clients dial (default:
	// listen). Its host goes into the proxy's certificates.
	PublicAddr string `yaml:"public_addr"`
	// AuthAddr is the Auth service's address; not needed when auth runs in
	// the same process.
	AuthAddr string `yaml:"auth_addr"`
	// JoinToken joins the cluster on first start (pctl tokens add --type
	// proxy); not needed when auth runs in the same process.
	JoinToken string `yaml:"join_token"`
	// CAPin optionally pins the cluster's host CA (sha256:...).
	CAPin string `yaml:"ca_pin"`
	// PostgresListen, if set, is a native PostgreSQL port (SSLRequest,
	// then TLS) for psql and other clients that cannot send ALPN.
	PostgresListen string `yaml:"postgres_listen"`
	// PostgresPublicAddr is what clients dial for PostgresListen (default:
	// its listen address, on the public host).
	PostgresPublicAddr string `yaml:"postgres_public_addr"`
	// MySQLListen, if set, is a native MySQL port (the server greeting,
	// then the client's TLS upgrade) for the mysql and mariadb clients.
	MySQLListen string `yaml:"mysql_listen"`
	// MySQLPublicAddr is what clients dial for MySQLListen (default: its
	// listen address, on the public host).
	MySQLPublicAddr string `yaml:"mysql_public_addr"`
}

// DBRole configures the database agent.
type DBRole struct {
	Enabled bool `yaml:"enabled"`
	// ProxyAddr is the proxy's public address, the only address the agent
	// dials (default: the proxy of this process).
	ProxyAddr string `yaml:"proxy_addr"`
	// JoinToken joins the cluster on first start (pctl tokens add --type
	// db); not needed when auth runs in the same process.
	JoinToken string `yaml:"join_token"`
	// CAPin optionally pins the cluster's host CA (sha256:...).
	CAPin string `yaml:"ca_pin"`
	// HostID names the agent (default: assigned when it joins).
	HostID string `yaml:"host_id"`
	// Databases are the databases this agent serves.
	Databases []dbagent.Database `yaml:"databases"`
	// HeartbeatInterval is how often the agent refreshes the inventory
	// (default 10s); its records expire after three missed heartbeats.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
}

// LogConfig configures the daemon's own log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// RoleBase is what every role section has.
type RoleBase struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
}

// AuthRole configures the Auth service.
type AuthRole struct {
	RoleBase `yaml:",inline"`
	// PublicAddrs are the names and addresses clients reach the Auth
	// service by; they go into its TLS certificate.
	PublicAddrs []string `yaml:"public_addrs"`
	// SecondFactor is off, optional (default) or on.
	SecondFactor string `yaml:"second_factor"`
	// UserCertTTL is the default lifetime of user certificates (12h).
	UserCertTTL time.Duration `yaml:"user_cert_ttl"`
	// Audit configures the audit log.
	Audit AuditConfig `yaml:"audit"`
}

// AuditConfig configures the Auth service's audit log.
type AuditConfig struct {
	// Dir holds the JSON-lines files (default <data_dir>/audit).
	Dir string `yaml:"dir"`
	// Durability is "sync" (fsync each event) or "batch" (default: fsync
	// at most every second).
	Durability string `yaml:"durability"`
}

// LoadConfig reads and checks a configuration file. Unknown fields are
// errors, so a misspelt key does not silently do nothing.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the config file: %w", err)
	}
	return ParseConfig(data, filepath.Dir(path))
}

// ParseConfig parses configuration YAML; relative paths are taken from dir.
func ParseConfig(data []byte, dir string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("the config file is not valid: %w", err)
	}
	if c.DataDir == "" {
		return nil, errors.New("the config file needs data_dir: the directory for the cluster's state")
	}
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(dir, c.DataDir)
	}
	if !c.Auth.Enabled && !c.Proxy.Enabled && !c.DB.Enabled {
		return nil, errors.New("the config file enables no role: set enabled: true under auth, proxy or db")
	}
	if c.DiagAddr != "" {
		if err := checkDiagAddr(c.DiagAddr); err != nil {
			return nil, err
		}
	}
	if c.Auth.Enabled {
		if c.Auth.Listen == "" {
			c.Auth.Listen = "127.0.0.1:3025"
		}
		if _, _, err := net.SplitHostPort(c.Auth.Listen); err != nil {
			return nil, fmt.Errorf("auth.listen %q is not host:port", c.Auth.Listen)
		}
		if c.Auth.Audit.Dir == "" {
			c.Auth.Audit.Dir = filepath.Join(c.DataDir, "audit")
		} else if !filepath.IsAbs(c.Auth.Audit.Dir) {
			c.Auth.Audit.Dir = filepath.Join(dir, c.Auth.Audit.Dir)
		}
		switch c.Auth.Audit.Durability {
		case "", "batch", "sync":
		default:
			return nil, fmt.Errorf("auth.audit.durability is %q; use sync or batch", c.Auth.Audit.Durability)
		}
	}
	if c.Proxy.Enabled {
		if c.Proxy.Listen == "" {
			c.Proxy.Listen = "0.0.0.0:3080"
		}
		if _, _, err := net.SplitHostPort(c.Proxy.Listen); err != nil {
			return nil, fmt.Errorf("proxy.listen %q is not host:port", c.Proxy.Listen)
		}
		if c.Proxy.PublicAddr != "" {
			if _, _, err := net.SplitHostPort(c.Proxy.PublicAddr); err != nil {
				return nil, fmt.Errorf("proxy.public_addr %q is not host:port", c.Proxy.PublicAddr)
			}
		}
		if c.Proxy.PostgresListen != "" {
			if _, _, err := net.SplitHostPort(c.Proxy.PostgresListen); err != nil {
				return nil, fmt.Errorf("proxy.postgres_listen %q is not host:port", c.Proxy.PostgresListen)
			}
		}
		if c.Proxy.MySQLListen != "" {
			if _, _, err := net.SplitHostPort(c.Proxy.MySQLListen); err != nil {
				return nil, fmt.Errorf("proxy.mysql_listen %q is not host:port", c.Proxy.MySQLListen)
			}
		}
		if !c.Auth.Enabled && c.Proxy.AuthAddr == "" {
			return nil, errors.New("proxy.auth_addr is required when the auth role runs elsewhere")
		}
	}
	if c.DB.Enabled {
		if c.DB.ProxyAddr == "" && !c.Proxy.Enabled {
			return nil, errors.New("db.proxy_addr is required: the proxy's public address")
		}
		if c.DB.ProxyAddr != "" {
			if _, _, err := net.SplitHostPort(c.DB.ProxyAddr); err != nil {
				return nil, fmt.Errorf("db.proxy_addr %q is not host:port", c.DB.ProxyAddr)
			}
		}
		seen := map[string]bool{}
		for i := range c.DB.Databases {
			if err := c.DB.Databases[i].Validate(); err != nil {
				return nil, fmt.Errorf("db.databases: %w", err)
			}
			if seen[c.DB.Databases[i].Name] {
				return nil, fmt.Errorf("db.databases: %q is listed twice", c.DB.Databases[i].Name)
			}
			seen[c.DB.Databases[i].Name] = true
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("log.level is %q; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return nil, fmt.Errorf("log.format is %q; use text or json", c.Log.Format)
	}
	return &c, nil
}
