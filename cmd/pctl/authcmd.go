package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

func (a *app) authCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Export the cluster's CAs and sign database server certificates"}
	cmd.AddCommand(a.authExportCmd(), a.authSignCmd())
	return cmd
}

func (a *app) authExportCmd() *cobra.Command {
	var typ string
	cmd := &cobra.Command{
		Use:   "export --type user|host|db",
		Short: "Print a CA's certificates as PEM",
		Args:  argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch ca.AuthorityType(typ) {
		case ca.UserCA, ca.HostCA, ca.DatabaseCA:
		default:
			return fmt.Errorf("--type must be user, host or db")
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			resp, err := c.GetCA(ctx, typ)
			if err != nil {
				return err
			}
			certs, err := parseCertList(resp.Certs)
			if err != nil {
				return fmt.Errorf("the Auth service sent a %s CA that does not parse: %s", typ, message(err))
			}
			for _, cert := range certs {
				if _, err := a.stdout.Write(ca.EncodeCertPEM(cert.Raw)); err != nil {
					return err
				}
			}
			return nil
		})(cmd, args)
	}
	cmd.Flags().StringVar(&typ, "type", "", "the CA: user, host or db")
	return cmd
}

func parseCertList(pems []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range pems {
		certs, err := ca.ParseCertsPEM([]byte(p))
		if err != nil {
			return nil, err
		}
		out = append(out, certs...)
	}
	return out, nil
}

func (a *app) authSignCmd() *cobra.Command {
	var (
		format string
		hosts  []string
		out    string
		ttl    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sign --format db --host H1,H2 --out PREFIX [--ttl 2160h]",
		Short: "Make a database server's key and certificate: writes PREFIX.crt, PREFIX.key and PREFIX.cas",
		Long: "Make a TLS key and certificate for a self-hosted PostgreSQL or MySQL/MariaDB server.\n" +
			"The key is made here and never sent; the database CA signs the certificate. PREFIX.cas\n" +
			"holds the database CA that the server trusts for the client certificates agents present.",
		Args: argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if format != "db" {
			return fmt.Errorf("--format %q is not supported; use --format db", format)
		}
		if len(hosts) == 0 {
			return fmt.Errorf("name the database server with --host (its DNS names or IP addresses, comma-separated)")
		}
		if out == "" {
			return fmt.Errorf("pass --out PREFIX: the files are written to PREFIX.crt, PREFIX.key and PREFIX.cas")
		}
		if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
			return fmt.Errorf("the directory %s for --out does not exist; create it first", filepath.Dir(out))
		}
		key, err := ca.GenerateKey()
		if err != nil {
			return err
		}
		pub, err := authclient.MarshalPublicKey(key.Public())
		if err != nil {
			return err
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			resp, err := c.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, Hosts: hosts, TTL: ttl})
			if err != nil {
				return err
			}
			cert, err := ca.ParseCertPEM([]byte(resp.Cert))
			if err != nil {
				return fmt.Errorf("the Auth service sent a certificate that does not parse: %s", message(err))
			}
			dbCAs, err := parseCertList(resp.DBCAs)
			if err != nil {
				return fmt.Errorf("the Auth service sent a database CA that does not parse: %s", message(err))
			}
			if err := ca.WriteDatabaseServerFiles(out, cert.Raw, key, dbCAs); err != nil {
				return err
			}
			a.printDBServerHowTo(out, cert)
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "what to sign: db (a database server certificate)")
	f.StringSliceVar(&hosts, "host", nil, "the server's DNS names and IP addresses, comma-separated; the first is the CN")
	f.StringVar(&out, "out", "", "the prefix of the files to write")
	f.DurationVar(&ttl, "ttl", 2160*time.Hour, "the certificate's lifetime")
	return cmd
}

func (a *app) printDBServerHowTo(prefix string, cert *x509.Certificate) {
	abs, err := filepath.Abs(prefix)
	if err != nil {
		abs = prefix
	}
	crt, key, cas := abs+".crt", abs+".key", abs+".cas"
	w := a.stdout
	fmt.Fprintf(w, "Wrote %s (for %s, valid until %s), %s (mode 0600) and %s.\n\n",
		crt, strings.Join(append(cert.DNSNames, ipStrings(cert)...), ", "), when(cert.NotAfter, a.now()), key, cas)
	fmt.Fprintf(w, "PostgreSQL: copy the files to the server, make the key owned by the postgres user, then set in postgresql.conf:\n\n")
	fmt.Fprintf(w, "  ssl = on\n  ssl_cert_file = '%s'\n  ssl_key_file = '%s'\n  ssl_ca_file = '%s'\n\n", crt, key, cas)
	fmt.Fprintf(w, "and in pg_hba.conf, so that every connection must present a certificate from the cluster:\n\n")
	fmt.Fprintf(w, "  hostssl all all 0.0.0.0/0 cert\n\n")
	fmt.Fprintf(w, "MySQL/MariaDB: set in my.cnf, section [mysqld]:\n\n")
	fmt.Fprintf(w, "  ssl-cert = %s\n  ssl-key = %s\n  ssl-ca = %s\n  require_secure_transport = ON\n\n", crt, key, cas)
	fmt.Fprintf(w, "and make each database user the agent connects as require its certificate:\n\n")
	fmt.Fprintf(w, "  ALTER USER 'alice'@'%%' REQUIRE SUBJECT '/CN=alice';\n\n")
	fmt.Fprintf(w, "Reload the server after changing its configuration.\n")
}

func ipStrings(cert *x509.Certificate) []string {
	out := make([]string, len(cert.IPAddresses))
	for i, ip := range cert.IPAddresses {
		out[i] = ip.String()
	}
	return out
}
