package client_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/portcullis-db/portcullis/client"
)

// Get a route certificate for a database and run psql with it through the
// proxy, as `pcl db connect pg1 --db-user alice --db-name app -- -c 'select 1'`
// does.
func ExampleProfile_DatabaseLogin() {
	ctx := context.Background()
	p, err := client.LoadProfile("")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.DatabaseLogin(ctx, "pg1", "alice", "app"); err != nil {
		log.Fatal(err)
	}
	cfg, err := p.DatabaseConfig(ctx, "pg1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s at %s as %s\n", cfg.Name, cfg.Addr(), cfg.DBUser)

	dbc, err := cfg.Command([]string{"-c", "select 1"})
	if err != nil {
		log.Fatal(err)
	}
	cmd, err := dbc.Cmd() // a *ClientNotInstalledError names the package to install
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
}

// List the databases the user's roles let them see.
func ExampleProfile_Databases() {
	ctx := context.Background()
	p, err := client.LoadProfile("")
	if err != nil {
		log.Fatal(err)
	}
	dbs, err := p.Databases(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, db := range dbs {
		fmt.Println(db.Name, db.Protocol, db.Labels)
	}
}
