package client_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/client"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestSignupWithTOTPThenLogin(t *testing.T) {
	c := authtest.Start(t, authtest.WithConfig(func(cfg *auth.Config) { cfg.SecondFactor = "on" }))
	token := addUser(t, c, "bob", "", "access")
	if token == "" {
		t.Fatal("no sign-up token")
	}
	home := t.TempDir()
	ctx := context.Background()

	var secret string
	user, err := client.Signup(ctx, client.SignupRequest{
		ProxyAddr: c.Addr, Token: token, Password: alicePassword, CAPin: c.HostPin(),
		EnrollTOTP: func(ctx context.Context, otpauthURL string) (string, error) {
			u, err := url.Parse(otpauthURL)
			if err != nil || u.Scheme != "otpauth" {
				t.Fatalf("enrollment URL %q: %v", otpauthURL, err)
			}
			secret = u.Query().Get("secret")
			return totp.GenerateCode(secret, c.Clock.Now())
		},
	}, client.WithHome(home))
	if err != nil {
		t.Fatalf("Signup: %v", err)
	}
	if user != "bob" || secret == "" {
		t.Fatalf("Signup = %q (secret %t)", user, secret != "")
	}

	// The token works once.
	_, err = client.Signup(ctx, client.SignupRequest{ProxyAddr: c.Addr, Token: token, Password: alicePassword}, client.WithHome(home))
	if err == nil || !strings.Contains(err.Error(), "invalid, used or expired") {
		t.Errorf("second Signup with the token: %v", err)
	}

	// The code used at sign-up cannot be used again: the next step's can.
	c.Clock.Advance(30 * time.Second)
	prompted := false
	p, err := client.Login(ctx, client.LoginRequest{
		ProxyAddr: c.Addr, Username: "bob", Password: alicePassword,
		PromptOTP: func(context.Context) (string, error) {
			prompted = true
			return totp.GenerateCode(secret, c.Clock.Now())
		},
	}, client.WithHome(home))
	if err != nil {
		t.Fatalf("Login after sign-up (verified with the CAs stored by Signup): %v", err)
	}
	if !prompted || p.Username != "bob" {
		t.Errorf("prompted %v, profile %+v", prompted, p)
	}
}

func TestSignupRefusesWrongPin(t *testing.T) {
	c := authtest.Start(t)
	token := addUser(t, c, "bob", "", "access")
	_, err := client.Signup(context.Background(), client.SignupRequest{
		ProxyAddr: c.Addr, Token: token, Password: alicePassword, CAPin: "sha256:" + strings.Repeat("ab", 32),
	}, client.WithHome(t.TempDir()))
	if !client.IsUntrustedProxy(err) {
		t.Fatalf("Signup with a wrong pin: %v", err)
	}
}
