# Modules that run until the test creates ${var.dir}/release, which the
# etcd-stopped test never does: "hold" on the worker that is the holder,
# "master_hold" on the master. When etcd stops for good every instance
# must stop its modules and exit, the master included. "master_done"
# ends on the master once the test has stopped etcd (${var.dir}/finish),
# well within heartbeat_timeout: the master knows how it ended, though
# it cannot publish it. "after" and "nobody" never start.

variable "dir" {
  type = string
}

distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "5s"
  capability_timeout = "1m"
}

module "shell" "hold" {
  requires = ["holder"]
  script   = "echo ${run.instance} > ${var.dir}/holding.tmp; mv ${var.dir}/holding.tmp ${var.dir}/holding; while [ ! -e ${var.dir}/release ]; do sleep 0.05; done; echo released"
}

module "shell" "master_hold" {
  pin_to_master = true
  script        = "touch ${var.dir}/master-holding; while [ ! -e ${var.dir}/release ]; do sleep 0.05; done; echo released"
}

module "shell" "master_done" {
  pin_to_master = true
  script        = "touch ${var.dir}/master-waiting; while [ ! -e ${var.dir}/finish ]; do sleep 0.05; done; echo finished"
}

module "shell" "after" {
  depends_on = [module.hold]
  command    = ["echo", "after"]
}

module "shell" "nobody" {
  requires = ["nobody"]
  command  = ["echo", "no instance offers this"]
}
