# A timeout below the default interval (2s) is refused as well.
distributed {
  heartbeat_timeout = "500ms"
  etcd {
    ca_file   = "ca.pem"
    cert_file = "client.pem"
  }
}

module "shell" "a" {
  command = ["true"]
}
