package tunnel

// ALPN is the TLS application protocol under which a proxy's public port
// carries agents' SSH tunnels (the proxy terminates TLS, then speaks SSH).
const ALPN = "portcullis-tunnel"
