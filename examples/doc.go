// Package examples holds runnable embeddings of Portcullis: a Go service
// that embeds the proxy, an application that uses database.Dial, and a custom
// audit sink.
package examples
