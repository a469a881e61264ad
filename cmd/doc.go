// Package cmd holds the reference binaries: portcullis (the daemon), pctl
// (the administrator's tool) and pcl (the user's client).
package cmd
