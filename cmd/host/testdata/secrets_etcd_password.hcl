# The etcd password is masked although secrets does not list it: a module
# prints it. Run on one machine, the distributed block is read but not used.
distributed {
  etcd {
    username = "modpipe"
    password = env("ETCD_PASSWORD")
  }
}

module "shell" "print" {
  script = "echo pw=$ETCD_PASSWORD"
}
