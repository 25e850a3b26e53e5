# "lostone" runs on the worker offering x, which the test SIGKILLs; its
# second attempt then waits for a member offering x, and "boom" (on the
# master) fails once the test creates ${var.dir}/boom, which stops the
# pipeline before that attempt starts.

variable "dir" {
  type = string
}

pipeline {
  name = "fleet-lost-stopped"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "1m"
}

module "shell" "lostone" {
  requires = ["x"]
  script   = "touch ${var.dir}/started; exec sleep 120"

  retry {
    attempts = 2
  }
}

module "shell" "boom" {
  pin_to_master = true
  script        = "while [ ! -e ${var.dir}/boom ]; do sleep 0.05; done; exit 1"
}
