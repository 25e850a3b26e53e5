distributed {
  heartbeat_interval = "often"
  heartbeat_timeout  = "0s"
  capabilities       = "docker"
  coordinater        = "etcd"
  etcd {
    endpoints = "127.0.0.1:2379"
    passwd    = "x"
  }
  etcd {}
}
