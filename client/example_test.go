package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/portcullis-db/portcullis/client"
)

// Log in once with the host CA pin from `pctl status`, then call the
// cluster's API with the stored certificate.
func ExampleLogin() {
	ctx := context.Background()
	p, err := client.Login(ctx, client.LoginRequest{
		ProxyAddr: "proxy.example.com:3080",
		Username:  "alice",
		Password:  "correct horse battery",
		CAPin:     "sha256:4f1c0a5e2b7d9c3e8a6f0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("logged in as %s (roles %v) until %s\n", p.Username, p.Roles, p.Expires.Format(time.RFC3339))

	// Later, in another process:
	p, err = client.LoadProfile("")
	if err != nil {
		log.Fatal(err)
	}
	if p.Expired(time.Now()) {
		log.Fatal("the login expired; log in again")
	}
	api, err := p.AuthClient(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer api.Close()
	dbs, err := api.ListDatabases(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, db := range dbs {
		fmt.Println(db.Name, db.Protocol)
	}
}
