package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/client"
)

func (a *app) signupCmd() *cobra.Command {
	var (
		req           client.SignupRequest
		passwordStdin bool
		totp          bool
	)
	cmd := &cobra.Command{
		Use:   "signup --proxy HOST:PORT --token TOKEN [--ca-pin sha256:...|--insecure] [--totp]",
		Short: "Set your password with the sign-up token an administrator gave you",
		Long: "Set your password with the one-time sign-up token from `pctl users add`. With --totp,\n" +
			"also enroll an authenticator app: pcl prints an otpauth:// URL to add to the app and asks\n" +
			"for a code from it. With --password-stdin, stdin holds the password and then the code.",
		Args: noArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		home, err := a.home()
		if err != nil {
			return err
		}
		if req.ProxyAddr == "" {
			return errors.New("name the proxy with --proxy HOST:PORT")
		}
		if req.Token == "" {
			return errors.New("pass the sign-up token with --token; an administrator makes one with pctl users add")
		}
		if req.Password, err = a.password(cmd.Context(), passwordStdin, true); err != nil {
			return err
		}
		if totp {
			req.EnrollTOTP = func(ctx context.Context, url string) (string, error) {
				fmt.Fprintf(a.stdout, "Add this to your authenticator app (it holds a secret: do not share it):\n\n  %s\n\n", url)
				return a.code(ctx, "Code from the app: ", "after the password, stdin must hold a code from the authenticator app")
			}
		}
		user, err := client.Signup(cmd.Context(), req, client.WithHome(home))
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Signed up as %s. Log in with: pcl login --proxy %s --user %s\n", user, req.ProxyAddr, user)
		return nil
	}
	f := cmd.Flags()
	f.StringVar(&req.ProxyAddr, "proxy", "", "the proxy's address, host:port")
	f.StringVar(&req.Token, "token", "", "the sign-up token")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.BoolVar(&totp, "totp", false, "enroll an authenticator app for one-time codes")
	f.StringVar(&req.CAPin, "ca-pin", "", "the cluster's host CA pin, sha256:...")
	f.BoolVar(&req.Insecure, "insecure", false, "do not verify the proxy (test clusters only)")
	return cmd
}
