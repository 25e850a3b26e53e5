# "hold" runs on a worker (it requires "holder") until the test creates
# ${var.dir}/release; "first" has run by then. The test kills or stops
# things while hold runs: the master, etcd, an etcd member, or it starts a
# second instance with a taken index. "last" depends on hold.

variable "dir" {
  type = string
}

variable "heartbeat_timeout" {
  type    = string
  default = "2s"
}

pipeline {
  name = "fleet-hold"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = var.heartbeat_timeout
  capability_timeout = "1m"
}

module "shell" "first" {
  command = ["echo", "first"]
}

module "shell" "hold" {
  requires   = ["holder"]
  script     = "echo ${run.instance} > ${var.dir}/holding.tmp; mv ${var.dir}/holding.tmp ${var.dir}/holding; while [ ! -e ${var.dir}/release ]; do sleep 0.05; done; echo released"
  depends_on = [module.first]
}

module "shell" "last" {
  command = ["echo", "last after ${module.hold.value.stdout}"]
}
