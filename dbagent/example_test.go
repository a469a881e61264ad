package dbagent_test

import (
	"context"
	"log"

	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/dbagent"
)

// A database agent joins the cluster through its proxy with a join token,
// then serves its databases over the reverse tunnel until ctx is done.
func ExampleService() {
	ctx := context.Background()
	creds, err := hostcert.Join(ctx, "proxy.example.com:3080", "<join token>", "",
		hostcert.Request{Role: "Db", HostID: "agent-1"})
	if err != nil {
		log.Fatal(err)
	}
	m := hostcert.NewManager(creds)
	m.Dir = "/var/lib/portcullis/db"
	svc := &dbagent.Service{
		Credentials: m,
		ProxyAddrs:  []string{"proxy.example.com:3080"},
		Databases: []dbagent.Database{
			{Name: "pg1", Protocol: "postgres", URI: "10.0.0.5:5432", Labels: map[string]string{"env": "prod"}},
		},
	}
	log.Fatal(svc.Run(ctx))
}
