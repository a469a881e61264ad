package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/client"
)

func (a *app) loginCmd() *cobra.Command {
	var (
		req           client.LoginRequest
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "login --proxy HOST:PORT --user NAME [--ca-pin sha256:...|--insecure]",
		Short: "Log in: make a key here and get a short-lived certificate for it",
		Long: "Log in to the cluster. The first login to a proxy needs the cluster's host CA pin (--ca-pin,\n" +
			"printed by `pctl status`); later logins verify the proxy with the CA stored then.\n" +
			"--proxy and --user default to those of the current login.",
		Args: noArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		home, err := a.home()
		if err != nil {
			return err
		}
		if req.ProxyAddr == "" || req.Username == "" {
			if prev, err := client.LoadProfile(home); err == nil {
				if req.ProxyAddr == "" {
					req.ProxyAddr = prev.ProxyAddr
				}
				if req.Username == "" && req.ProxyAddr == prev.ProxyAddr {
					req.Username = prev.Username
				}
			}
		}
		if req.ProxyAddr == "" {
			return errors.New("name the proxy with --proxy HOST:PORT")
		}
		if req.Username == "" {
			return errors.New("name the user with --user NAME")
		}
		if req.Password, err = a.password(cmd.Context(), passwordStdin, false); err != nil {
			return err
		}
		if req.OTP == "" {
			req.PromptOTP = func(ctx context.Context) (string, error) {
				return a.code(ctx, "One-time code: ", "the cluster asks for a code from your authenticator app: pass it with --otp CODE")
			}
		}
		p, err := client.Login(cmd.Context(), req, client.WithHome(home))
		if err != nil {
			return err
		}
		a.printProfile(a.stdout, p)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&req.ProxyAddr, "proxy", "", "the proxy's address, host:port")
	f.StringVar(&req.Username, "user", "", "your user name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&req.OTP, "otp", "", "the code from your authenticator app")
	f.StringVar(&req.CAPin, "ca-pin", "", "the cluster's host CA pin, sha256:... (first login; `pctl status` prints it)")
	f.BoolVar(&req.Insecure, "insecure", false, "do not verify the proxy (test clusters only)")
	f.DurationVar(&req.TTL, "ttl", 0, "how long the certificate lasts (default: the cluster's, usually 12h)")
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the current login",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := a.home()
			if err != nil {
				return err
			}
			p, err := client.LoadProfile(home)
			if err != nil {
				return err
			}
			a.printProfile(a.stdout, p)
			return nil
		},
	}
}

func (a *app) printProfile(w io.Writer, p *client.Profile) {
	now := a.now()
	valid := "valid until " + p.Expires.Local().Format("2006-01-02 15:04 MST") + " (in " + shortDuration(p.Expires.Sub(now)) + ")"
	if p.Expired(now) {
		valid = "EXPIRED at " + p.Expires.Local().Format("2006-01-02 15:04 MST") + "; log in again with pcl login"
	}
	fmt.Fprintf(w, "> Profile: %s@%s\n", p.Username, p.ProxyAddr)
	fmt.Fprintf(w, "  Cluster:      %s\n", p.Cluster)
	fmt.Fprintf(w, "  Proxy:        %s\n", p.ProxyAddr)
	fmt.Fprintf(w, "  User:         %s\n", p.Username)
	fmt.Fprintf(w, "  Roles:        %s\n", strings.Join(p.Roles, ", "))
	if len(p.Traits) > 0 {
		keys := make([]string, 0, len(p.Traits))
		for k := range p.Traits {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + strings.Join(p.Traits[k], ",")
		}
		fmt.Fprintf(w, "  Traits:       %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "  Certificate:  %s\n", valid)
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the current login's key and certificate",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := a.home()
			if err != nil {
				return err
			}
			p, err := client.LoadProfile(home)
			if client.IsNotLoggedIn(err) {
				fmt.Fprintln(a.stdout, "Not logged in.")
				return nil
			}
			if err != nil {
				return err
			}
			if err := p.Logout(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Logged out %s from %s.\n", p.Username, p.ProxyAddr)
			return nil
		},
	}
}

// shortDuration is d for a person: "11h59m", "1d2h", "30m", "45s".
func shortDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var b strings.Builder
	for _, part := range []struct {
		n    int
		unit string
	}{{days, "d"}, {hours, "h"}, {mins, "m"}} {
		if part.n > 0 {
			fmt.Fprintf(&b, "%d%s", part.n, part.unit)
		}
	}
	return b.String()
}
