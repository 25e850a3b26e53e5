# A module that only the "fragile" workers can run. Its first attempt
# writes a marker and hangs, so the test can SIGKILL the worker that runs
# it; a later attempt finishes at once. "after" depends on it.

variable "dir" {
  type = string
}

variable "attempts" {
  type    = number
  default = 1
}

pipeline {
  name = "fleet-lost"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "1m"
}

module "shell" "victim" {
  requires = ["fragile"]
  script   = "if [ -e ${var.dir}/started ]; then echo ${run.instance} > ${var.dir}/rerun.tmp; mv ${var.dir}/rerun.tmp ${var.dir}/rerun; echo rerun; else echo ${run.instance} > ${var.dir}/started.tmp; mv ${var.dir}/started.tmp ${var.dir}/started; exec sleep 120; fi"

  retry {
    attempts = var.attempts
    backoff  = "10ms"
  }
}

module "shell" "after" {
  command    = ["echo", "after ${module.victim.value.stdout}"]
}
