package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// dataDirEnv names the environment variable that sets --data-dir.
const dataDirEnv = "PORTCULLIS_DATA_DIR"

// app is one run of pctl: its streams, environment and global flags.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time

	dataDir  string
	authAddr string
	identity string
}

// run executes pctl with args and returns the exit code. Errors are
// printed to stderr as one sentence.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		msg := message(err)
		if strings.HasPrefix(msg, "unknown command") {
			msg += "; run pctl --help for the commands"
		}
		fmt.Fprintf(stderr, "error: %s\n", msg)
		return 1
	}
	return 0
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pctl",
		Short: "Administer a Portcullis cluster",
		Long: "pctl administers a Portcullis cluster through the Auth service's API.\n\n" +
			"On the Auth host, point it at the data dir (--data-dir or " + dataDirEnv + "): it reads the\n" +
			"admin identity and the API address the Auth service writes there. From elsewhere, pass\n" +
			"--auth HOST:PORT and --identity FILE.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v; see %s --help", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data-dir", "", "the Auth service's data dir, on the Auth host (default $"+dataDirEnv+")")
	pf.StringVar(&a.authAddr, "auth", "", "the Auth service's API address, host:port (default: read from the data dir)")
	pf.StringVar(&a.identity, "identity", "", "an identity file to call the API with (default: the admin identity in the data dir)")
	root.AddCommand(a.usersCmd(), a.rolesCmd(), a.tokensCmd(), a.locksCmd(), a.authCmd(), a.statusCmd(), a.dbCmd(), a.auditCmd())
	return root
}

// conn is how pctl reaches the Auth service.
type conn struct {
	addr string
	id   *authclient.IdentityFile
}

// hostPin is the host CA pin users need for their first login.
func (c *conn) hostPin() string { return ca.Fingerprint(c.id.HostCAs[0]) }

// connect reads the identity and address and returns an API client.
func (a *app) connect() (*authclient.Client, *conn, error) {
	dataDir := a.dataDir
	if dataDir == "" {
		dataDir = a.getenv(dataDirEnv)
	}
	idPath, addr := a.identity, a.authAddr
	if dataDir != "" {
		if idPath == "" {
			idPath = filepath.Join(dataDir, authclient.AdminIdentityFile)
		}
		if addr == "" {
			var err error
			if addr, err = readAddrFile(dataDir); err != nil {
				return nil, nil, err
			}
		}
	}
	if idPath == "" || addr == "" {
		return nil, nil, errors.New("pctl does not know where the Auth service is: on the Auth host pass --data-dir DIR " +
			"(or set " + dataDirEnv + "), from elsewhere pass --auth HOST:PORT --identity FILE")
	}
	id, err := authclient.ReadIdentityFile(idPath)
	if errors.Is(err, fs.ErrPermission) {
		return nil, nil, fmt.Errorf("cannot read the identity file %s: permission denied; run pctl as the user that runs the Auth service", idPath)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("the identity file %s does not exist; is the Auth service running with this data dir?", idPath)
	}
	if err != nil {
		return nil, nil, err
	}
	if now := a.now(); now.After(id.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("the identity in %s expired at %s; restart the Auth service to renew the admin identity, or export a new one",
			idPath, id.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	c, err := authclient.New(addr, authclient.WithTLSConfig(id.TLSConfig()))
	if err != nil {
		return nil, nil, err
	}
	return c, &conn{addr: addr, id: id}, nil
}

// readAddrFile reads the API address the Auth service wrote into its data
// dir. A wildcard listen address is dialled on loopback.
func readAddrFile(dataDir string) (string, error) {
	path := filepath.Join(dataDir, authclient.AddrFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist; start the Auth service with data_dir %s, or pass --auth HOST:PORT", path, dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the Auth service's address: %w", err)
	}
	addr := strings.TrimSpace(string(data))
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s holds %q, not host:port; pass --auth HOST:PORT", path, addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// withClient runs fn with an API client.
func (a *app) withClient(fn func(ctx context.Context, c *authclient.Client, cn *conn) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, cn, err := a.connect()
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(cmd.Context(), c, cn)
	}
}

// argNames checks that a command got exactly the named arguments.
func argNames(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(args) < len(names) {
			return fmt.Errorf("%s needs %s; usage: %s", cmd.CommandPath(), strings.Join(names[len(args):], " and "), cmd.UseLine())
		}
		return fmt.Errorf("%s takes %d argument(s), got %d; usage: %s", cmd.CommandPath(), len(names), len(args), cmd.UseLine())
	}
}

// readSecretLine reads one line from r (a password on stdin).
func readSecretLine(r io.Reader, what string) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the %s from stdin: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no %s on stdin", what)
	}
	return line, nil
}

// message is err as one line for a person, without Go package prefixes.
func message(err error) string {
	msg := err.Error()
	for _, p := range []string{"authclient: ", "ca: ", "policy: ", "client: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return strings.Join(strings.Fields(msg), " ")
}
