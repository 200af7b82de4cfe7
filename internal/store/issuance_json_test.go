package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestRenewalJSONKeepsItsSchema: renewal.json embeds spec.Issuance, the
// one description of an issuance; a file written before (every key of
// schema 1 set) reads and writes back unchanged, key for key.
func TestRenewalJSONKeepsItsSchema(t *testing.T) {
	const old = `{
  "schema": 1, "name": "r", "identifiers": ["81.2.69.160", "2a02:898:0:20::7"], "auto_ip": true,
  "ca": "https://ca.internal/acme/acme/directory", "ca_root": "/etc/ipcert/root.pem",
  "directory": "https://ca.internal/acme/acme/directory", "profile": "shortlived", "challenge": "http-01",
  "webroot": "/var/www/html", "webroot_port": 8080, "http_listen": "127.0.0.1:5002", "tls_listen": "[::1]:5003",
  "key_type": "ec384", "email": "you@example.org", "combined": true, "reuse_key": true,
  "preferred_chain": "ISRG Root X2", "eab_kid": "kid", "eab_hmac_file": "/etc/ipcert/eab",
  "pre_hooks": ["systemctl stop lighttpd"], "post_hooks": ["systemctl start lighttpd"],
  "deploy_hooks": ["systemctl reload nginx"], "reload": "nginx", "verify_addr": "81.2.69.160:443",
  "map_ports": true, "cluster": true, "current_version": 3, "serial": "1f"
}`
	var r Renewal
	if err := json.Unmarshal([]byte(old), &r); err != nil {
		t.Fatal(err)
	}
	if r.CA != "https://ca.internal/acme/acme/directory" || r.Challenge != "http-01" || r.WebRootPort != 8080 || len(r.PostHooks) != 1 || !r.Cluster || r.Current != 3 {
		t.Errorf("read: %+v", r)
	}
	back, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	if err := json.Unmarshal([]byte(old), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("written back:\n%s\nwant the keys and values of:\n%s", back, old)
	}
}
