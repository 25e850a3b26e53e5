# The interval must be shorter than the timeout, and a client certificate
# needs its key.
distributed {
  heartbeat_interval = "5s"
  heartbeat_timeout  = "3s"
  etcd {
    key_file = "client.key"
  }
}

module "shell" "a" {
  command = ["true"]
}
